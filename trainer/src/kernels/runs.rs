//! [`Runs`]: a permutation of contiguous blocks, as [`Kernels::copy_runs`]
//! copies it in one call (the CP strategies' moves between the zigzag
//! layout, natural order and head groups).
//!
//! [`Kernels::copy_runs`]: super::Kernels::copy_runs

/// Runs of `len` values each: run `i` copies `src[from..from + len]` to
/// `dst[to..to + len]`, for `(from, to) = starts[i]`. The destinations
/// must not overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runs {
    /// Values per run.
    pub len: usize,
    /// `(from, to)`: where each run starts in the source and destination.
    pub starts: Vec<(usize, usize)>,
}

impl Runs {
    /// No runs yet, each to be `len` values long.
    pub fn new(len: usize) -> Self {
        Runs {
            len,
            starts: Vec::new(),
        }
    }

    /// Adds the run from `from` to `to`.
    pub fn push(&mut self, from: usize, to: usize) {
        self.starts.push((from, to));
    }

    /// The same blocks copied back, destination to source.
    pub fn inverse(&self) -> Runs {
        Runs {
            len: self.len,
            starts: self.starts.iter().map(|&(from, to)| (to, from)).collect(),
        }
    }

    /// Adds `other`'s runs (of the same length) with `from` added to their
    /// sources and `to` to their destinations.
    pub fn extend_shifted(&mut self, other: &Runs, from: usize, to: usize) {
        assert_eq!(self.len, other.len, "runs of another length");
        let shifted = (other.starts.iter()).map(|&(f, t)| (f + from, t + to));
        self.starts.extend(shifted);
    }

    /// Copies the runs between host slices (the CPU's
    /// [`Kernels::copy_runs`](super::Kernels::copy_runs)).
    pub fn copy(&self, src: &[f32], dst: &mut [f32]) {
        for &(from, to) in &self.starts {
            dst[to..to + self.len].copy_from_slice(&src[from..from + self.len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_shift_move_blocks_back_and_along() {
        let mut runs = Runs::new(2);
        runs.push(0, 4);
        runs.push(4, 0);
        let src = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let mut dst = [9.0; 6];
        runs.copy(&src, &mut dst);
        assert_eq!(dst, [4.0, 5.0, 9.0, 9.0, 0.0, 1.0]);
        let mut back = [7.0; 6];
        runs.inverse().copy(&dst, &mut back);
        assert_eq!(back, [0.0, 1.0, 7.0, 7.0, 4.0, 5.0]);
        let mut shifted = Runs::new(2);
        shifted.extend_shifted(&runs, 1, 0);
        assert_eq!(shifted.starts, vec![(1, 4), (5, 0)]);
    }
}
