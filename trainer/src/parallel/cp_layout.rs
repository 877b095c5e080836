//! Moving `[slabs, rows, width]` tensors between the zigzag layout of a CP
//! group (rank `t` holds chunks `t` and `2P−1−t`) and natural sequence order.

use crate::kernels::Runs;

/// The chunk geometry of one CP group: `cp` ranks, `2·cp` chunks of `chunk` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZigzagLayout {
    /// Ranks in the CP group.
    pub cp: usize,
    /// Rows per chunk (`C = S / 2P`).
    pub chunk: usize,
}

impl ZigzagLayout {
    /// Rows each rank holds (`2C`).
    pub fn local_len(&self) -> usize {
        2 * self.chunk
    }

    /// Rows of the whole sequence (`2PC`).
    pub fn seq_len(&self) -> usize {
        2 * self.cp * self.chunk
    }

    /// Global chunk id of `half` (0 or 1) of rank `rank`'s rows.
    pub fn chunk_id(&self, rank: usize, half: usize) -> usize {
        if half == 0 {
            rank
        } else {
            2 * self.cp - 1 - rank
        }
    }

    /// The runs that move rank `rank`'s rows from its local tensor
    /// (`[slabs, 2C, width]`) to their places in the whole sequence's
    /// (`[slabs, S, width]`): a run per slab and half. Their
    /// [`Runs::inverse`] reads the rows back out.
    pub fn runs(&self, rank: usize, slabs: usize, width: usize) -> Runs {
        let mut runs = Runs::new(self.chunk * width);
        for s in 0..slabs {
            for half in 0..2 {
                let local = (s * self.local_len() + half * self.chunk) * width;
                let full = (s * self.seq_len() + self.chunk_id(rank, half) * self.chunk) * width;
                runs.push(local, full);
            }
        }
        runs
    }

    /// Reads rank `rank`'s rows out of `full` (`[slabs, S, width]`) into
    /// `local` (`[slabs, 2C, width]`).
    pub fn take(&self, rank: usize, full: &[f32], slabs: usize, width: usize, local: &mut [f32]) {
        debug_assert_eq!(full.len(), slabs * self.seq_len() * width);
        self.runs(rank, slabs, width).inverse().copy(full, local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_place_and_take_follow_the_zigzag_split() {
        // S = 8, cp = 2, one slab of width 1: rank 0 holds rows [0,1,6,7].
        let layout = ZigzagLayout { cp: 2, chunk: 2 };
        let mut full = vec![0.0; 8];
        layout.runs(0, 1, 1).copy(&[0.0, 1.0, 6.0, 7.0], &mut full);
        layout.runs(1, 1, 1).copy(&[2.0, 3.0, 4.0, 5.0], &mut full);
        assert_eq!(full, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        let mut local = vec![0.0; 4];
        layout.take(1, &full, 1, 1, &mut local);
        assert_eq!(local, [2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn take_inverts_the_runs_for_every_rank_slab_and_width() {
        for cp in [1, 2, 3, 4, 8] {
            let layout = ZigzagLayout { cp, chunk: 3 };
            let (slabs, width) = (2, 5);
            let full: Vec<f32> = (0..slabs * layout.seq_len() * width)
                .map(|i| i as f32)
                .collect();
            let mut rebuilt = vec![f32::NAN; full.len()];
            for rank in 0..cp {
                let mut local = vec![0.0; slabs * layout.local_len() * width];
                layout.take(rank, &full, slabs, width, &mut local);
                layout.runs(rank, slabs, width).copy(&local, &mut rebuilt);
            }
            assert_eq!(rebuilt, full, "cp = {cp}");
        }
    }
}
