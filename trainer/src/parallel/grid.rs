//! The rank grid: how `world_size` ranks factor into tensor-, context-,
//! data- and pipeline-parallel groups (Megatron-Core's mixed-radix layout).

use std::fmt;

/// One parallel dimension of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    /// Tensor parallel.
    Tp,
    /// Context parallel.
    Cp,
    /// Data parallel.
    Dp,
    /// Pipeline parallel (only size 1 is supported).
    Pp,
}

impl Axis {
    const ALL: [Axis; 4] = [Axis::Tp, Axis::Cp, Axis::Dp, Axis::Pp];

    /// The name used in order strings and config keys.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Tp => "tp",
            Axis::Cp => "cp",
            Axis::Dp => "dp",
            Axis::Pp => "pp",
        }
    }

    fn parse(name: &str) -> Option<Axis> {
        Axis::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The process groups a rank belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// Ranks that split one layer's tensors.
    Tp,
    /// Ranks that split one sequence (the ring for CP attention).
    Cp,
    /// Ranks that read different samples; excludes CP.
    Dp,
    /// Ranks holding identical weights: gradients are averaged here.
    DpCp,
    /// Ranks sharing one model replica's activations (TP × CP).
    TpCp,
    /// Pipeline stages of one replica.
    Pp,
}

impl GroupKind {
    /// Every kind, in the order reports print them.
    pub const ALL: [GroupKind; 6] = [
        GroupKind::Tp,
        GroupKind::Cp,
        GroupKind::Dp,
        GroupKind::DpCp,
        GroupKind::TpCp,
        GroupKind::Pp,
    ];

    /// The group's name in reports and errors (`tp`, `cp`, `dp`, `dp-cp`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Tp => "tp",
            GroupKind::Cp => "cp",
            GroupKind::Dp => "dp",
            GroupKind::DpCp => "dp-cp",
            GroupKind::TpCp => "tp-cp",
            GroupKind::Pp => "pp",
        }
    }

    fn axes(self) -> &'static [Axis] {
        match self {
            GroupKind::Tp => &[Axis::Tp],
            GroupKind::Cp => &[Axis::Cp],
            GroupKind::Dp => &[Axis::Dp],
            GroupKind::DpCp => &[Axis::Dp, Axis::Cp],
            GroupKind::TpCp => &[Axis::Tp, Axis::Cp],
            GroupKind::Pp => &[Axis::Pp],
        }
    }
}

/// Why the configured sizes do not form a grid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GridError {
    /// A size is zero (only `parallel.dp` may be 0, meaning "derive it").
    #[error("{key} = 0: every parallel size must be at least 1")]
    Zero {
        /// The offending key.
        key: &'static str,
    },
    /// `world_size` is not a multiple of `tp · cp · pp`, so `dp` cannot be derived.
    #[error(
        "parallel.world_size = {world_size} is not divisible by parallel.tp × parallel.cp × pp = \
         {tp} × {cp} × {pp} = {model}; the data-parallel size is world_size / (tp·cp·pp), \
         so choose world_size as a multiple of {model}"
    )]
    NotDivisible {
        /// Total ranks.
        world_size: usize,
        /// Tensor-parallel size.
        tp: usize,
        /// Context-parallel size.
        cp: usize,
        /// Pipeline-parallel size.
        pp: usize,
        /// `tp · cp · pp`.
        model: usize,
    },
    /// An explicit `dp` disagrees with `world_size`.
    #[error(
        "parallel.world_size = {world_size} but parallel.tp × parallel.cp × parallel.dp × pp = \
         {tp} × {cp} × {dp} × {pp} = {product}; the sizes must multiply to world_size \
         (set parallel.dp = 0 to derive it)"
    )]
    Product {
        /// Total ranks.
        world_size: usize,
        /// Tensor-parallel size.
        tp: usize,
        /// Context-parallel size.
        cp: usize,
        /// Data-parallel size.
        dp: usize,
        /// Pipeline-parallel size.
        pp: usize,
        /// Their product.
        product: usize,
    },
    /// Pipeline parallelism is not implemented.
    #[error("pipeline parallelism is not supported: pp = {pp}, expected 1")]
    Pipeline {
        /// The requested pipeline size.
        pp: usize,
    },
    /// The order string names an unknown or repeated axis.
    #[error(
        "parallel.order = \"{order}\": {problem}; expected a '-'-separated list of distinct \
         names from tp, cp, dp, pp (e.g. \"tp-cp-dp\")"
    )]
    Order {
        /// The order string as given.
        order: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The configured sizes; `dp = 0` derives it from the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GridSpec {
    /// Total number of ranks (`parallel.world_size`).
    pub world_size: usize,
    /// Tensor-parallel size (`parallel.tp`).
    pub tp: usize,
    /// Context-parallel size (`parallel.cp`).
    pub cp: usize,
    /// Data-parallel size (`parallel.dp`); 0 means `world_size / (tp·cp·pp)`.
    pub dp: usize,
    /// Pipeline-parallel size; must be 1.
    pub pp: usize,
    /// Axis order, first name varying fastest (`parallel.order`).
    pub order: String,
}

impl GridSpec {
    /// Megatron's default order: tensor parallel fastest, then CP, then DP.
    pub const DEFAULT_ORDER: &'static str = "tp-cp-dp";

    /// A spec with the default order, `pp = 1`, and `dp` derived.
    pub fn new(world_size: usize, tp: usize, cp: usize) -> Self {
        GridSpec {
            world_size,
            tp,
            cp,
            dp: 0,
            pp: 1,
            order: Self::DEFAULT_ORDER.to_string(),
        }
    }
}

/// A rank's coordinate on every axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RankCoords {
    /// Tensor-parallel index.
    pub tp: usize,
    /// Context-parallel index (the `cp_rank`).
    pub cp: usize,
    /// Data-parallel index.
    pub dp: usize,
    /// Pipeline stage.
    pub pp: usize,
}

/// The rank grid: coordinates and groups of every rank.
///
/// Rank decomposition is mixed radix with the first axis of the order
/// varying fastest: with `tp-cp-dp`, `rank = tp + TP·(cp + CP·dp)`.
///
/// ```
/// use cptrain::parallel::{GridSpec, GroupKind, ParallelGrid};
/// let grid = ParallelGrid::new(&GridSpec::new(4, 2, 2)).unwrap();
/// assert_eq!(grid.groups(GroupKind::Tp), vec![vec![0, 1], vec![2, 3]]);
/// assert_eq!(grid.group(GroupKind::Cp, 1), vec![1, 3]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParallelGrid {
    order: Vec<Axis>,
    sizes: [usize; 4],
    world_size: usize,
}

impl ParallelGrid {
    /// Validates `spec` and builds the grid.
    pub fn new(spec: &GridSpec) -> Result<Self, GridError> {
        for (key, value) in [
            ("parallel.world_size", spec.world_size),
            ("parallel.tp", spec.tp),
            ("parallel.cp", spec.cp),
            ("parallel.pp", spec.pp),
        ] {
            if value == 0 {
                return Err(GridError::Zero { key });
            }
        }
        if spec.pp != 1 {
            return Err(GridError::Pipeline { pp: spec.pp });
        }
        let order = parse_order(&spec.order)?;
        let (world_size, tp, cp, pp) = (spec.world_size, spec.tp, spec.cp, spec.pp);
        let model = tp * cp * pp;
        let dp = if spec.dp == 0 {
            if !world_size.is_multiple_of(model) {
                return Err(GridError::NotDivisible {
                    world_size,
                    tp,
                    cp,
                    pp,
                    model,
                });
            }
            world_size / model
        } else {
            spec.dp
        };
        if model * dp != world_size {
            let product = model * dp;
            return Err(GridError::Product {
                world_size,
                tp,
                cp,
                dp,
                pp,
                product,
            });
        }
        let mut sizes = [0; 4];
        for (axis, size) in Axis::ALL.into_iter().zip([tp, cp, dp, pp]) {
            sizes[axis as usize] = size;
        }
        Ok(ParallelGrid {
            order,
            sizes,
            world_size,
        })
    }

    /// Total number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Size of one axis.
    pub fn size(&self, axis: Axis) -> usize {
        self.sizes[axis as usize]
    }

    /// The axis order, fastest first.
    pub fn order(&self) -> &[Axis] {
        &self.order
    }

    /// Coordinates of `rank` (panics if `rank >= world_size`: a caller bug).
    pub fn coords(&self, rank: usize) -> RankCoords {
        assert!(
            rank < self.world_size,
            "rank {rank} outside a world of {}",
            self.world_size
        );
        let mut c = [0; 4];
        let mut rest = rank;
        for &axis in &self.order {
            let size = self.size(axis);
            c[axis as usize] = rest % size;
            rest /= size;
        }
        RankCoords {
            tp: c[0],
            cp: c[1],
            dp: c[2],
            pp: c[3],
        }
    }

    /// The rank at the given coordinates.
    pub fn rank_of(&self, coords: RankCoords) -> usize {
        let c = [coords.tp, coords.cp, coords.dp, coords.pp];
        self.order
            .iter()
            .rev()
            .fold(0, |acc, &axis| acc * self.size(axis) + c[axis as usize])
    }

    /// The members of `rank`'s group of `kind`, in group order (the first
    /// axis of the order string varies fastest). A rank's index in this list
    /// is its rank inside the group.
    pub fn group(&self, kind: GroupKind, rank: usize) -> Vec<usize> {
        let base = self.coords(rank);
        let varying: Vec<Axis> = self
            .order
            .iter()
            .copied()
            .filter(|a| kind.axes().contains(a))
            .collect();
        let count: usize = varying.iter().map(|&a| self.size(a)).product();
        (0..count)
            .map(|mut index| {
                let mut c = [base.tp, base.cp, base.dp, base.pp];
                for &axis in &varying {
                    c[axis as usize] = index % self.size(axis);
                    index /= self.size(axis);
                }
                self.rank_of(RankCoords {
                    tp: c[0],
                    cp: c[1],
                    dp: c[2],
                    pp: c[3],
                })
            })
            .collect()
    }

    /// Every group of `kind`, ordered by their smallest member (which is
    /// also Megatron's order: the first fixed axis varies fastest).
    pub fn groups(&self, kind: GroupKind) -> Vec<Vec<usize>> {
        (0..self.world_size)
            .map(|rank| self.group(kind, rank))
            .enumerate()
            .filter(|(rank, group)| group[0] == *rank)
            .map(|(_, group)| group)
            .collect()
    }

    /// `rank`'s index in its CP group.
    pub fn cp_rank(&self, rank: usize) -> usize {
        self.coords(rank).cp
    }

    /// The global rank after `rank` on its CP ring (receives from `rank`
    /// in the forward ring).
    pub fn cp_next(&self, rank: usize) -> usize {
        let group = self.group(GroupKind::Cp, rank);
        group[(self.cp_rank(rank) + 1) % group.len()]
    }

    /// The global rank before `rank` on its CP ring.
    pub fn cp_prev(&self, rank: usize) -> usize {
        let group = self.group(GroupKind::Cp, rank);
        group[(self.cp_rank(rank) + group.len() - 1) % group.len()]
    }
}

fn parse_order(order: &str) -> Result<Vec<Axis>, GridError> {
    let problem = |problem: String| GridError::Order {
        order: order.to_string(),
        problem,
    };
    let mut axes = Vec::new();
    for name in order.split('-').map(str::trim) {
        let axis = Axis::parse(name).ok_or_else(|| problem(format!("unknown axis `{name}`")))?;
        if axes.contains(&axis) {
            return Err(problem(format!("axis `{name}` appears twice")));
        }
        axes.push(axis);
    }
    // Axes missing from the order are appended (they have size 1 or come last).
    axes.extend(
        Axis::ALL
            .into_iter()
            .filter(|a| !axes.contains(a))
            .collect::<Vec<_>>(),
    );
    Ok(axes)
}

impl fmt::Display for ParallelGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order: Vec<&str> = self.order.iter().map(|a| a.name()).collect();
        writeln!(
            f,
            "world {} = tp {} × cp {} × dp {} × pp {} (order {}, first fastest)",
            self.world_size,
            self.size(Axis::Tp),
            self.size(Axis::Cp),
            self.size(Axis::Dp),
            self.size(Axis::Pp),
            order.join("-"),
        )?;
        for kind in GroupKind::ALL {
            let groups: Vec<String> = self.groups(kind).iter().map(|g| format!("{g:?}")).collect();
            writeln!(f, "  {:<6} groups: {}", kind.name(), groups.join(" "))?;
        }
        for rank in 0..self.world_size {
            let c = self.coords(rank);
            writeln!(
                f,
                "  rank {rank}: tp {} cp {} dp {}; cp ring {} -> {rank} -> {}",
                c.tp,
                c.cp,
                c.dp,
                self.cp_prev(rank),
                self.cp_next(rank),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(world_size: usize, tp: usize, cp: usize, dp: usize) -> ParallelGrid {
        let spec = GridSpec {
            dp,
            ..GridSpec::new(world_size, tp, cp)
        };
        ParallelGrid::new(&spec).unwrap()
    }

    fn seq(range: std::ops::Range<usize>) -> Vec<usize> {
        range.collect()
    }

    /// The worked examples of docs/cp-attention.md §1.
    #[test]
    fn megatron_worked_examples() {
        let g = grid(4, 2, 2, 0);
        assert_eq!(g.groups(GroupKind::Tp), [vec![0, 1], vec![2, 3]]);
        assert_eq!(g.groups(GroupKind::Cp), [vec![0, 2], vec![1, 3]]);
        assert_eq!(g.groups(GroupKind::Dp), [[0], [1], [2], [3]]);
        assert_eq!(g.groups(GroupKind::DpCp), [vec![0, 2], vec![1, 3]]);
        assert_eq!(g.groups(GroupKind::TpCp), [seq(0..4)]);

        let g = grid(8, 2, 2, 2);
        assert_eq!(g.groups(GroupKind::Tp), [[0, 1], [2, 3], [4, 5], [6, 7]]);
        assert_eq!(g.groups(GroupKind::Cp), [[0, 2], [1, 3], [4, 6], [5, 7]]);
        assert_eq!(g.groups(GroupKind::Dp), [[0, 4], [1, 5], [2, 6], [3, 7]]);
        assert_eq!(g.groups(GroupKind::DpCp), [[0, 2, 4, 6], [1, 3, 5, 7]]);
        assert_eq!(g.groups(GroupKind::TpCp), [seq(0..4), seq(4..8)]);

        let g = grid(8, 4, 2, 0);
        assert_eq!(g.groups(GroupKind::Cp), [[0, 4], [1, 5], [2, 6], [3, 7]]);
        assert_eq!(g.size(Axis::Dp), 1);
    }

    #[test]
    fn cp_rank_and_ring_neighbours() {
        let g = grid(12, 1, 3, 4);
        // CP groups are consecutive runs of 3 with tp = 1.
        assert_eq!(g.group(GroupKind::Cp, 7), [6, 7, 8]);
        assert_eq!((g.cp_rank(7), g.cp_prev(7), g.cp_next(7)), (1, 6, 8));
        assert_eq!((g.cp_rank(8), g.cp_next(8)), (2, 6));
        let g = grid(4, 2, 2, 0);
        assert_eq!((g.cp_prev(1), g.cp_next(1)), (3, 3));
    }

    #[test]
    fn order_string_changes_which_axis_is_fastest() {
        let spec = GridSpec {
            order: "cp-tp-dp".into(),
            ..GridSpec::new(4, 2, 2)
        };
        let g = ParallelGrid::new(&spec).unwrap();
        assert_eq!(g.groups(GroupKind::Cp), [[0, 1], [2, 3]]);
        assert_eq!(g.groups(GroupKind::Tp), [[0, 2], [1, 3]]);
        // `pp` may be named; a missing axis is appended.
        let spec = GridSpec {
            order: "tp-cp-dp-pp".into(),
            ..GridSpec::new(4, 2, 2)
        };
        assert!(ParallelGrid::new(&spec).is_ok());
        let spec = GridSpec {
            order: "dp".into(),
            ..GridSpec::new(4, 2, 2)
        };
        let g = ParallelGrid::new(&spec).unwrap();
        assert_eq!(g.order(), [Axis::Dp, Axis::Tp, Axis::Cp, Axis::Pp]);
    }

    /// Exhaustive over small sizes and every order: the groups of each kind
    /// partition the world, a rank's index in its CP group is its cp
    /// coordinate, and TP, CP and DP groups are orthogonal (two ranks share
    /// at most one of them, and the rank is determined by its three groups).
    #[test]
    fn groups_partition_the_world_and_are_orthogonal() {
        let orders = [
            "tp-cp-dp", "tp-dp-cp", "cp-tp-dp", "cp-dp-tp", "dp-tp-cp", "dp-cp-tp",
        ];
        for tp in 1..=3 {
            for cp in 1..=3 {
                for dp in 1..=3 {
                    for order in orders {
                        let spec = GridSpec {
                            order: order.into(),
                            ..GridSpec::new(tp * cp * dp, tp, cp)
                        };
                        check_partition_and_orthogonality(&ParallelGrid::new(&spec).unwrap());
                    }
                }
            }
        }
    }

    fn check_partition_and_orthogonality(g: &ParallelGrid) {
        let w = g.world_size();
        for kind in GroupKind::ALL {
            let mut seen = vec![0; w];
            for group in g.groups(kind) {
                for &r in &group {
                    seen[r] += 1;
                    assert_eq!(g.group(kind, r), group, "{kind:?} group of {r} in {g}");
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "{kind:?} groups do not partition {g}"
            );
        }
        for r in 0..w {
            assert_eq!(g.rank_of(g.coords(r)), r);
            let cp = g.group(GroupKind::Cp, r);
            assert_eq!(cp[g.cp_rank(r)], r);
            let dp_cp = g.group(GroupKind::DpCp, r);
            assert_eq!(dp_cp.len(), g.size(Axis::Dp) * g.size(Axis::Cp));
            assert!(
                cp.iter()
                    .chain(&g.group(GroupKind::Dp, r))
                    .all(|m| dp_cp.contains(m))
            );
            for s in 0..w {
                let shared = [GroupKind::Tp, GroupKind::Cp, GroupKind::Dp]
                    .into_iter()
                    .filter(|&k| g.group(k, r).contains(&s))
                    .count();
                assert!(
                    shared == 3 || (shared <= 1 && r != s),
                    "{r},{s} share {shared} in {g}"
                );
            }
        }
    }

    #[test]
    fn inconsistent_sizes_name_the_keys_and_the_rule() {
        let cases: [(GridSpec, &[&str]); 5] = [
            (
                GridSpec::new(6, 2, 2),
                &["parallel.world_size = 6", "2 × 2 × 1 = 4", "multiple of 4"],
            ),
            (
                GridSpec {
                    dp: 3,
                    ..GridSpec::new(8, 2, 2)
                },
                &[
                    "parallel.world_size = 8",
                    "parallel.dp",
                    "= 12",
                    "parallel.dp = 0",
                ],
            ),
            (GridSpec::new(4, 0, 2), &["parallel.tp = 0"]),
            (
                GridSpec {
                    order: "tp-xp".into(),
                    ..GridSpec::new(4, 2, 2)
                },
                &["unknown axis `xp`"],
            ),
            (
                GridSpec {
                    order: "tp-tp".into(),
                    ..GridSpec::new(4, 2, 2)
                },
                &["`tp` appears twice"],
            ),
        ];
        for (spec, needles) in cases {
            let message = ParallelGrid::new(&spec).unwrap_err().to_string();
            for needle in needles {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn display_lists_groups_and_rings() {
        let text = grid(4, 2, 2, 0).to_string();
        assert!(
            text.contains("world 4 = tp 2 × cp 2 × dp 1 × pp 1 (order tp-cp-dp-pp"),
            "{text}"
        );
        assert!(text.contains("cp     groups: [0, 2] [1, 3]"), "{text}");
        assert!(
            text.contains("rank 3: tp 1 cp 1 dp 0; cp ring 1 -> 3 -> 1"),
            "{text}"
        );
    }
}
