use serde::{Deserialize, Serialize};

/// The `[kernels]` section: where and with how many threads the math runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelsConfig {
    /// `cpu`; `cuda` with the plugin built in.
    pub device: String,
    /// Threads for the whole process, shared out among its ranks; 0 = all cores.
    pub threads: usize,
}

impl Default for KernelsConfig {
    fn default() -> Self {
        KernelsConfig {
            device: "cpu".into(),
            threads: 0,
        }
    }
}

impl KernelsConfig {
    /// Threads each of `local_ranks` ranks of this process gets (at least 1),
    /// so ranks and kernels together never oversubscribe the cores.
    pub fn threads_per_rank(&self, local_ranks: usize) -> usize {
        let total = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        (total / local_ranks.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_shared_out_among_ranks() {
        let cfg = KernelsConfig {
            threads: 8,
            ..KernelsConfig::default()
        };
        assert_eq!(cfg.threads_per_rank(1), 8);
        assert_eq!(cfg.threads_per_rank(4), 2);
        assert_eq!(cfg.threads_per_rank(16), 1);
    }
}
