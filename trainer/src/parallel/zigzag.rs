use std::ops::Range;

/// Why a sequence cannot be split over a context-parallel group.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZigzagError {
    /// The sequence does not split into `2·cp` equal chunks.
    #[error(
        "model.seq_len = {seq_len} is not divisible by 2 * parallel.cp = {}; \
         context parallelism splits each sequence into 2*cp equal chunks, \
         so choose seq_len as a multiple of {}",
        2 * cp,
        2 * cp
    )]
    NotDivisible {
        /// Global sequence length.
        seq_len: usize,
        /// Context-parallel degree.
        cp: usize,
    },
}

/// The two token ranges of a global sequence that CP rank `rank` of `cp`
/// holds under the load-balanced ("zigzag") split: chunks `rank` and
/// `2·cp − 1 − rank` of `2·cp` equal chunks, in that order.
///
/// With `cp = 1` this is the whole sequence (as two halves).
///
/// ```
/// use cptrain::parallel::zigzag_ranges;
/// // S = 8, cp = 2: rank 0 holds positions [0,1] and [6,7].
/// assert_eq!(zigzag_ranges(8, 2, 0).unwrap(), [0..2, 6..8]);
/// assert_eq!(zigzag_ranges(8, 2, 1).unwrap(), [2..4, 4..6]);
/// ```
pub fn zigzag_ranges(
    seq_len: usize,
    cp: usize,
    rank: usize,
) -> Result<[Range<usize>; 2], ZigzagError> {
    assert!(rank < cp, "CP rank {rank} out of range for cp = {cp}");
    if cp == 0 || !seq_len.is_multiple_of(2 * cp) {
        return Err(ZigzagError::NotDivisible { seq_len, cp });
    }
    let chunk = seq_len / (2 * cp);
    let first = rank * chunk;
    let second = (2 * cp - 1 - rank) * chunk;
    Ok([first..first + chunk, second..second + chunk])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_cover_the_sequence_exactly_once() {
        for cp in [1, 2, 3, 4, 8] {
            let seq_len = 2 * cp * 5;
            let mut seen = vec![0u8; seq_len];
            for rank in 0..cp {
                for range in zigzag_ranges(seq_len, cp, rank).unwrap() {
                    assert_eq!(range.len(), 5);
                    range.for_each(|t| seen[t] += 1);
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "cp = {cp}");
        }
    }

    #[test]
    fn indivisible_lengths_say_what_to_choose() {
        let err = zigzag_ranges(10, 3, 0).unwrap_err();
        assert_eq!(err, ZigzagError::NotDivisible { seq_len: 10, cp: 3 });
        assert!(err.to_string().contains("multiple of 6"));
    }
}
