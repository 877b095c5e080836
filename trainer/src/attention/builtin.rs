//! The built-in strategies by their `parallel.cp_comm` name, as the rank
//! contexts and `cptrain eval` build them.

use std::sync::Arc;

use super::{AllGatherAttention, Attention, LocalAttention, RingAttention, UlyssesAttention};
use crate::kernels::Kernels;
use crate::parallel::ProcessGroup;

/// A built-in attention strategy (`parallel.cp_comm`). Over a CP group of
/// one rank each is whole-sequence [`LocalAttention`]: with nothing to
/// exchange, the strategies coincide, and the packed layout is the fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinStrategy {
    /// Ring attention (`p2p`).
    P2p,
    /// All-gathered keys and values (`all_gather`).
    AllGather,
    /// Ulysses all-to-all over heads (`a2a`).
    A2a,
}

impl BuiltinStrategy {
    /// Every built-in strategy.
    pub const ALL: [BuiltinStrategy; 3] = [
        BuiltinStrategy::P2p,
        BuiltinStrategy::AllGather,
        BuiltinStrategy::A2a,
    ];

    /// The `parallel.cp_comm` name.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinStrategy::P2p => "p2p",
            BuiltinStrategy::AllGather => "all_gather",
            BuiltinStrategy::A2a => "a2a",
        }
    }

    /// The strategy called `name`, if it is a built-in one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The rank's attention over `cp_group`, running `kernels`.
    pub fn build(
        self,
        cp_group: Arc<dyn ProcessGroup>,
        kernels: Arc<dyn Kernels>,
    ) -> Arc<dyn Attention> {
        if cp_group.size() == 1 {
            return Arc::new(LocalAttention::new(kernels));
        }
        match self {
            BuiltinStrategy::P2p => Arc::new(RingAttention::new(cp_group, kernels, true)),
            BuiltinStrategy::AllGather => {
                Arc::new(AllGatherAttention::new(cp_group, kernels, true))
            }
            BuiltinStrategy::A2a => Arc::new(UlyssesAttention::new(cp_group, kernels, true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::QkvLayout;
    use crate::kernels::CpuKernels;
    use crate::parallel::{Backend, LocalBackend};

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for strategy in BuiltinStrategy::ALL {
            assert_eq!(BuiltinStrategy::from_name(strategy.name()), Some(strategy));
        }
        assert_eq!(BuiltinStrategy::from_name("ring"), None);
    }

    /// One rank in the CP group: every strategy is the packed local one.
    #[test]
    fn a_group_of_one_rank_runs_local_attention() {
        let backend = LocalBackend::new(1, std::time::Duration::from_secs(5));
        let group = backend.group("cp[0]", &[0], 0).unwrap();
        let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::default());
        for strategy in BuiltinStrategy::ALL {
            let attention = strategy.build(group.clone(), kernels.clone());
            assert_eq!(attention.name(), "local");
            assert_eq!(attention.qkv_layout(), QkvLayout::Packed);
        }
    }
}
