//! The order in which a step's sequences visit the windows: in file order,
//! or a seeded permutation per epoch (`data.shuffle`).
//!
//! Global sequence `g = s·B + j` is position `g mod W` of epoch `⌊g / W⌋`.
//! Unshuffled, that position is the window. Shuffled, the position goes
//! through a permutation of `0..W` chosen by `(train.seed, epoch)`: a
//! four-round Feistel network on the smallest even number of bits that
//! covers `W`, walking the cycle until the value falls below `W`. It needs
//! no memory and no state, so every rank of every layout computes the same
//! window for the same `g`, and a resumed run continues mid-epoch exactly.

/// How windows are ordered within each epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOrder {
    /// Permute each epoch (else windows go in file order).
    pub shuffle: bool,
    /// `train.seed`.
    pub seed: u64,
}

impl WindowOrder {
    /// Windows in file order, epoch after epoch.
    pub const SEQUENTIAL: WindowOrder = WindowOrder {
        shuffle: false,
        seed: 0,
    };

    /// The window of global sequence `index` over `windows` windows.
    pub fn window(&self, index: u128, windows: usize) -> usize {
        let w = windows as u128;
        let position = (index % w) as u64;
        if !self.shuffle || windows < 2 {
            return position as usize;
        }
        let epoch = (index / w) as u64;
        permute(position, windows as u64, self.seed, epoch) as usize
    }

    /// The epoch (from 0) of global sequence `index`.
    pub fn epoch(index: u128, windows: usize) -> u64 {
        (index / windows as u128) as u64
    }
}

/// SplitMix64's finalizer: a well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `position` under the permutation of `0..n` keyed by `(seed, epoch)`.
fn permute(position: u64, n: u64, seed: u64, epoch: u64) -> u64 {
    let bits = 64 - (n - 1).leading_zeros();
    let half = bits.div_ceil(2).max(1);
    let mask = (1u64 << half) - 1;
    let key = mix(seed ^ mix(epoch));
    let mut x = position;
    loop {
        let (mut left, mut right) = (x >> half, x & mask);
        for round in 0..4u64 {
            let f = mix(key ^ mix(round) ^ right) & mask;
            (left, right) = (right, left ^ f);
        }
        x = (left << half) | right;
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_visits_every_window_once_in_its_own_order() {
        for windows in [1usize, 2, 3, 7, 64, 100, 1000, 4097] {
            let order = WindowOrder {
                shuffle: true,
                seed: 1337,
            };
            let epoch = |e: u128| -> Vec<usize> {
                (0..windows as u128)
                    .map(|p| order.window(e * windows as u128 + p, windows))
                    .collect()
            };
            let mut previous: Option<Vec<usize>> = None;
            for e in 0..3 {
                let visited = epoch(e);
                let mut sorted = visited.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..windows).collect::<Vec<_>>(), "W = {windows}");
                if windows >= 7 {
                    assert_ne!(visited, (0..windows).collect::<Vec<_>>(), "shuffled");
                    if let Some(previous) = &previous {
                        assert_ne!(&visited, previous, "epochs differ, W = {windows}");
                    }
                }
                previous = Some(visited);
            }
        }
        assert_eq!(WindowOrder::SEQUENTIAL.window(12, 5), 2);
        let other_seed = WindowOrder {
            shuffle: true,
            seed: 7,
        };
        let first = |o: WindowOrder| (0..100).map(|p| o.window(p, 100)).collect::<Vec<_>>();
        assert_ne!(
            first(other_seed),
            first(WindowOrder {
                shuffle: true,
                seed: 1337
            })
        );
        assert_eq!(WindowOrder::epoch(250, 100), 2);
    }
}
