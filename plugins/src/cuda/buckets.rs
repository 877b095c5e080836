//! Host-side preparation of the embedding backward: rows grouped by the
//! table row they read, so each table row's gradient is one ordered sum.

/// Rows `0..n` grouped by key, stably (rows of a bucket stay in order), as
/// the `embedding_backward` kernel reads them (`i32`, its `int`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowBuckets {
    /// The key (table row) of each non-empty bucket, ascending.
    pub keys: Vec<i32>,
    /// Bucket `k` holds `rows[starts[k]..starts[k + 1]]`; `keys.len() + 1` entries.
    pub starts: Vec<i32>,
    /// Every row, grouped by bucket.
    pub rows: Vec<i32>,
}

impl RowBuckets {
    /// Groups row `i` under `keys[i]` (a counting sort over `0..table_rows`);
    /// a row whose key is `table_rows` belongs to no bucket and is left out.
    /// Callers check that every key is at most `table_rows` and that the row
    /// count fits an `i32`.
    pub fn new(keys: &[usize], table_rows: usize) -> Self {
        let mut counts = vec![0usize; table_rows + 2];
        for &k in keys {
            counts[k + 1] += 1;
        }
        for i in 0..=table_rows {
            counts[i + 1] += counts[i];
        }
        let kept = counts[table_rows];
        let mut rows = vec![0i32; kept];
        let mut next = counts.clone();
        for (row, &k) in keys.iter().enumerate().filter(|&(_, &k)| k < table_rows) {
            rows[next[k]] = row as i32;
            next[k] += 1;
        }
        let (mut bucket_keys, mut starts) = (Vec::new(), Vec::new());
        for key in 0..table_rows {
            if counts[key + 1] > counts[key] {
                bucket_keys.push(key as i32);
                starts.push(counts[key] as i32);
            }
        }
        starts.push(kept as i32);
        RowBuckets {
            keys: bucket_keys,
            starts,
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RowBuckets;

    #[test]
    fn rows_are_grouped_by_key_in_row_order() {
        let b = RowBuckets::new(&[3, 0, 3, 1, 0, 3], 5);
        assert_eq!(b.keys, [0, 1, 3]);
        assert_eq!(b.starts, [0, 2, 3, 6]);
        assert_eq!(b.rows, [1, 4, 3, 0, 2, 5]);
    }

    #[test]
    fn rows_keyed_past_the_table_are_left_out() {
        let b = RowBuckets::new(&[2, 5, 0, 2, 5], 5);
        assert_eq!(b.keys, [0, 2]);
        assert_eq!(b.starts, [0, 1, 3]);
        assert_eq!(b.rows, [2, 0, 3]);
    }
}
