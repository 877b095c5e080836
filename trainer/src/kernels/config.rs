use serde::{Deserialize, Serialize};

use super::Product;
use super::gemm_bf16::{self, Bf16Features, Bf16Gemm, Bf16Unsupported};

/// The `[kernels]` section: where and with how many threads the math runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelsConfig {
    /// The kernels provider: `cpu`, or with the `cuda` feature `cuda` (a GPU)
    /// and `cuda-emu` (the CUDA kernels emulated on the CPU, for tests).
    pub device: String,
    /// Threads for the whole process, shared out among its ranks; 0 = all cores.
    pub threads: usize,
    /// The GPU of `cuda` (an index of the CUDA driver); default: the rank's
    /// local rank.
    pub gpu: Option<usize>,
    /// Number format of the model's matrix products (see [`Precision`]).
    pub precision: Precision,
    /// `cuda` only: let cuBLAS round GEMM inputs to TF32 (faster, about 3
    /// decimal digits per product instead of f32's 7).
    pub tf32: bool,
}

/// Number format of the model's matrix products (`kernels.precision`).
/// Parameters, gradients, optimizer state and every other kernel stay f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 everywhere.
    #[default]
    F32,
    /// Linear layers and the output head round their operands to bf16 and
    /// accumulate in f32 (`kernels.device = "cpu"` on a CPU with
    /// AVX512-BF16, `cuda`, `cuda-emu`).
    Bf16,
}

impl std::fmt::Display for Precision {
    /// The `kernels.precision` value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl Precision {
    /// The CPU kernel for products at this precision, if this CPU runs it.
    pub fn cpu_product(self) -> Result<Product, Bf16Unsupported> {
        match self {
            Precision::F32 => Ok(Product::F32),
            Precision::Bf16 => Bf16Gemm::new().map(Product::Bf16),
        }
    }
}

impl Default for KernelsConfig {
    fn default() -> Self {
        KernelsConfig {
            device: "cpu".into(),
            threads: 0,
            gpu: None,
            precision: Precision::F32,
            tf32: false,
        }
    }
}

impl KernelsConfig {
    /// Checks the keys that depend on each other and on this CPU:
    /// `precision` (bf16 on the CPU device needs AVX512-BF16; other devices
    /// say themselves whether they run it) and `tf32`.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_on(Bf16Features::detect())
    }

    /// [`KernelsConfig::validate`] on a CPU with `cpu`'s features.
    fn validate_on(&self, cpu: Bf16Features) -> Result<(), String> {
        if self.precision == Precision::Bf16 && self.device == "cpu" {
            gemm_bf16::check(cpu).map_err(|e| {
                format!(
                    "kernels.precision = \"bf16\" cannot run on this CPU: {e}; set \
                     kernels.precision = \"f32\""
                )
            })?;
        }
        if self.tf32 && self.device != "cuda" {
            return Err(format!(
                "kernels.tf32 = true applies to kernels.device = \"cuda\" only, not \"{}\"; \
                 remove it or set kernels.device = \"cuda\"",
                self.device
            ));
        }
        Ok(())
    }

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

    /// A CPU with every feature the bf16 kernels need, and one without `vdpbf16ps`.
    const BF16_CPU: Bf16Features = Bf16Features {
        avx512f: true,
        avx512bw: true,
        avx512bf16: true,
    };
    const AVX512_ONLY: Bf16Features = Bf16Features {
        avx512bf16: false,
        ..BF16_CPU
    };

    #[test]
    fn bf16_runs_on_cpus_with_avx512_bf16_and_is_refused_elsewhere() {
        let bf16 = KernelsConfig {
            precision: Precision::Bf16,
            ..KernelsConfig::default()
        };
        assert_eq!(bf16.validate_on(BF16_CPU), Ok(()));
        assert_eq!(KernelsConfig::default().validate_on(AVX512_ONLY), Ok(()));
        let text = bf16.validate_on(AVX512_ONLY).unwrap_err();
        assert!(
            text.starts_with("kernels.precision = \"bf16\" cannot run on this CPU")
                && text.contains("lacks AVX512-BF16:")
                && text.ends_with("set kernels.precision = \"f32\""),
            "{text}"
        );
        // The CUDA device runs bf16 products on any CPU.
        let gpu = KernelsConfig {
            device: "cuda".into(),
            ..bf16
        };
        assert_eq!(gpu.validate_on(AVX512_ONLY), Ok(()));
    }

    #[test]
    fn tf32_off_the_gpu_is_refused_with_the_key() {
        assert_eq!(KernelsConfig::default().validate(), Ok(()));
        let tf32 = KernelsConfig {
            tf32: true,
            ..KernelsConfig::default()
        };
        let text = tf32.validate().unwrap_err();
        assert!(
            text.contains("kernels.tf32 = true applies to kernels.device = \"cuda\""),
            "{text}"
        );
        let gpu = KernelsConfig {
            device: "cuda".into(),
            tf32: true,
            ..KernelsConfig::default()
        };
        assert_eq!(gpu.validate(), Ok(()));
    }

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
