use serde::{Deserialize, Serialize};

/// The `[kernels]` section: where and with how many threads the math runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelsConfig {
    /// The kernels provider; `cpu` is the only one today.
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
    /// Threads each of `local_ranks` ranks of this process gets (at least 1):
    /// its share of `threads`, so with `threads = 0` ranks and kernels
    /// together stay within the cores unless there are more ranks than
    /// cores ([`KernelsConfig::oversubscription`] says when they do not).
    pub fn threads_per_rank(&self, local_ranks: usize) -> usize {
        self.threads_per_rank_on(cores(), local_ranks)
    }

    fn threads_per_rank_on(&self, cores: usize, local_ranks: usize) -> usize {
        let total = match self.threads {
            0 => cores,
            n => n,
        };
        (total / local_ranks.max(1)).max(1)
    }

    /// Why `local_ranks` ranks of this process, each with its share of the
    /// threads, would run more threads than the process has cores, if they
    /// would. Threads then take turns on the cores and every parallel
    /// kernel waits for the slowest, so a run is slower than with fewer.
    pub fn oversubscription(&self, local_ranks: usize) -> Option<String> {
        self.oversubscription_on(cores(), local_ranks)
    }

    fn oversubscription_on(&self, cores: usize, local_ranks: usize) -> Option<String> {
        let ranks = local_ranks.max(1);
        let total = ranks * self.threads_per_rank_on(cores, ranks);
        if total <= cores {
            return None;
        }
        let mut advice = Vec::new();
        if self.threads > cores {
            advice.push("set kernels.threads = 0 to share the cores among the ranks".to_owned());
        }
        if ranks > cores {
            advice.push(format!(
                "run at most {cores} rank(s) per process (the mpi backend spreads ranks over \
                 processes and machines)"
            ));
        }
        let advice = advice.join(", and ");
        Some(format!(
            "{ranks} rank(s) x {} kernel thread(s) = {total} threads on {cores} core(s): \
             the threads take turns on the cores, which is slower; {advice}",
            total / ranks
        ))
    }
}

/// Cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

    #[test]
    fn more_threads_than_cores_is_reported_with_advice() {
        let shared = KernelsConfig::default();
        assert_eq!(shared.oversubscription_on(2, 1), None);
        assert_eq!(shared.oversubscription_on(2, 2), None);
        let ranks = shared.oversubscription_on(2, 4).unwrap();
        assert!(
            ranks.starts_with("4 rank(s) x 1 kernel thread(s) = 4 threads on 2 core(s)"),
            "{ranks}"
        );
        assert!(ranks.contains("at most 2 rank(s) per process"), "{ranks}");
        let explicit = KernelsConfig {
            threads: 4,
            ..KernelsConfig::default()
        };
        assert_eq!(explicit.oversubscription_on(4, 2), None);
        let over = explicit.oversubscription_on(2, 2).unwrap();
        assert!(
            over.starts_with("2 rank(s) x 2 kernel thread(s) = 4 threads"),
            "{over}"
        );
        assert!(over.contains("kernels.threads = 0"), "{over}");
        assert!(!over.contains("per process"), "{over}");
        let both = explicit.oversubscription_on(2, 4).unwrap();
        assert!(
            both.contains("kernels.threads = 0") && both.contains("at most 2 rank(s) per process"),
            "{both}"
        );
    }
}
