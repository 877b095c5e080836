//! The CUDA device through the `cptrain` binary: cuda-emu trains the CPU's
//! loss curve and resumes bit-exactly; `kernels.device = "cuda"` on a
//! machine without a GPU, or in a binary without the feature, is one clear
//! error. Run with `cargo test --features cuda --test cuda` (`.ci/nvrtc`).

mod common;

#[cfg(feature = "cuda")]
use std::path::Path;

use common::cptrain;

/// `--set` arguments of a run of the default tiny config into `out`, with
/// 2 sequences per step instead of 16: the emulator runs every CUDA thread
/// as a fiber, about 1.2 s per step at this size.
#[cfg(feature = "cuda")]
fn run_args(device: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let mut sets = vec![
        format!("kernels.device={device}"),
        format!("train.out_dir={out}"),
        "train.batch_size=2".into(),
        "train.eval_batches=0".into(),
        "metrics.progress=never".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let mut args = vec!["run".to_string()];
    for set in sets {
        args.extend(["--set".to_string(), set]);
    }
    args
}

/// Every step's `device_host_bytes` in the run's metrics.jsonl.
#[cfg(feature = "cuda")]
fn host_bytes(out: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let record = |line: &str| -> serde_json::Value { serde_json::from_str(line).unwrap() };
    (text.lines().map(record))
        .map(|r| r["device_host_bytes"].as_u64().expect("device_host_bytes"))
        .collect()
}

#[cfg(feature = "cuda")]
fn run_ok(dir: &Path, args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cptrain(dir, &args);
    assert!(
        out.status.success(),
        "cptrain {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 10 steps of the tiny config from the same seed on cuda-emu and
/// on the CPU: the losses agree to 1e-5 relative. They are not equal: the
/// emulated GEMMs round each dot product once (f64 sums), the CPU's sum in
/// f32 blocks, and reductions run in other orders, so weights differ by
/// about 1e-7 relative after a step. Measured: at most 1.2e-8 relative over
/// the ten steps; 1e-5 leaves room for other hosts' libm, and a wrong
/// kernel moves the loss by far more (1e-3 after one step).
#[cfg(feature = "cuda")]
#[test]
fn cuda_emu_trains_the_cpu_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(dir.path(), &run_args("cpu", "cpu", &["train.steps=10"]));
    run_ok(
        dir.path(),
        &run_args("cuda-emu", "emu", &["train.steps=10"]),
    );
    let cpu = common::losses(&dir.path().join("cpu"));
    let emu = common::losses(&dir.path().join("emu"));
    assert_eq!(cpu.len(), 10);
    assert_eq!(emu.len(), 10);
    for (step, (e, c)) in emu.iter().zip(&cpu).enumerate() {
        assert!(
            (e - c).abs() <= 1e-5 * c.abs(),
            "step {}: cuda-emu loss {e} vs cpu {c}",
            step + 1
        );
    }
    assert!(cpu[9] < cpu[0], "the loss falls: {cpu:?}");
    // The device's memory is in the metrics; the host's is the peak RSS.
    let first_record = |run: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.path().join(run).join("metrics.jsonl")).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    };
    assert_eq!(host_bytes(&dir.path().join("emu")), vec![0; 10]);
    let device_peak = first_record("emu")["device_peak_bytes"].as_u64();
    assert!(device_peak.is_some_and(|b| b > 0), "{device_peak:?}");
    assert!(first_record("cpu").get("device_peak_bytes").is_none());
    // MFU against the CPU's measured rate on the CPU; none on the device,
    // whose peak the host cannot measure (`metrics.peak_gflops` unset).
    assert!(first_record("cpu")["mfu"].as_f64().is_some_and(|m| m > 0.0));
    assert!(first_record("emu")["mfu"].is_null());
}

/// `kernels.precision = "bf16"` on cuda-emu trains the CPU's bf16 loss
/// curve, single rank and cp = 2: both devices round the products' operands
/// to bf16 alike and accumulate in f32.
///
/// The first step's loss (the forward of the same initial weights) agrees
/// to f32 precision: measured 1e-8 relative, limit 1e-6, where the f32
/// products give a loss 2e-5 away (asserted, so the test tells bf16 from
/// f32 products). Later steps agree to 1e-4 (measured at most 2.9e-5): the
/// devices' f32 sums differ in their last bits, so after an update a value
/// near a rounding boundary can round to the neighbouring bf16 value
/// (2⁻⁸ apart), which moves the loss by far more than an f32 ulp.
#[cfg(feature = "cuda")]
#[test]
fn cuda_emu_trains_the_cpus_bf16_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let bf16 = "kernels.precision=bf16";
    let cpu_check = cptrain(dir.path(), &["check", "--set", bf16]);
    if !cpu_check.status.success() {
        eprintln!(
            "skipped: the CPU reference cannot run bf16: {}",
            String::from_utf8_lossy(&cpu_check.stderr)
        );
        return;
    }
    run_ok(dir.path(), &run_args("cpu", "cpu-f32", &["train.steps=1"]));
    let f32_first = common::losses(&dir.path().join("cpu-f32"))[0];
    let layouts = [
        ("parallel.world_size=1", "parallel.cp=1"),
        ("parallel.world_size=2", "parallel.cp=2"),
    ];
    for (world, cp) in layouts {
        let extra = ["train.steps=10", bf16, world, cp];
        let (cpu_out, emu_out) = (format!("cpu-{cp}"), format!("emu-{cp}"));
        run_ok(dir.path(), &run_args("cpu", &cpu_out, &extra));
        run_ok(dir.path(), &run_args("cuda-emu", &emu_out, &extra));
        let cpu = common::losses(&dir.path().join(&cpu_out));
        let emu = common::losses(&dir.path().join(&emu_out));
        assert_eq!((cpu.len(), emu.len()), (10, 10), "{cp}");
        let relative = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(
            relative(emu[0], cpu[0]) <= 1e-6,
            "{cp}, step 1: cuda-emu bf16 loss {} vs cpu bf16 {}",
            emu[0],
            cpu[0]
        );
        assert!(
            relative(f32_first, cpu[0]) > 1e-6,
            "{cp}: the f32 products give the same first loss as bf16 ({f32_first})"
        );
        for (step, (e, c)) in emu.iter().zip(&cpu).enumerate().skip(1) {
            assert!(
                relative(*e, *c) <= 1e-4,
                "{cp}, step {}: cuda-emu bf16 loss {e} vs cpu bf16 {c}",
                step + 1
            );
        }
    }
}

/// Context and tensor parallelism on the CUDA device: each CP strategy at
/// cp = 2 and (p2p) cp = 4, and tp = 2 alone and with cp = 2 (sequence
/// parallelism on), ranks as threads each with its own emulated device,
/// train the single-rank CPU loss curve. The attention, its partial results
/// and merges and the TP layers run on the device, and so do the exchanges:
/// the K/V messages, the all-gathers and all-to-alls, the TP sums and the
/// gradient all-reduce go device to device, so rank 0's device copies no
/// `f32` buffer to or from the host during any step (`device_host_bytes`)
/// but, under TP, one log-sum-exp per row.
/// Tolerance as above (the layouts add only f32 reordering of the same sums).
#[cfg(feature = "cuda")]
#[test]
fn cuda_emu_parallel_layouts_train_the_cpu_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(dir.path(), &run_args("cpu", "cpu", &["train.steps=10"]));
    let cpu = common::losses(&dir.path().join("cpu"));
    let layouts = [
        (1, 2, "p2p"),
        (1, 2, "all_gather"),
        (1, 2, "a2a"),
        (1, 4, "p2p"),
        (2, 1, "p2p"),
        (2, 2, "p2p"),
    ];
    for (tp, cp, comm) in layouts {
        let out = format!("emu-tp{tp}-cp{cp}-{comm}");
        let world = format!("parallel.world_size={}", tp * cp);
        let (tp_set, cp_set) = (format!("parallel.tp={tp}"), format!("parallel.cp={cp}"));
        let comm_set = format!("parallel.cp_comm={comm}");
        let extra = ["train.steps=10", &world, &tp_set, &cp_set, &comm_set];
        run_ok(dir.path(), &run_args("cuda-emu", &out, &extra));
        let emu = common::losses(&dir.path().join(&out));
        assert_eq!(emu.len(), 10, "{out}");
        // Only the vocabulary-parallel loss's per-row log-sum-exps pass
        // through the host (merged there in f64): 4 bytes down and 4 up for
        // each of the rank's rows (2 sequences of 64 tokens over cp).
        let lse_bytes = if tp > 1 { 8 * 2 * 64 / cp } else { 0 };
        assert_eq!(
            host_bytes(&dir.path().join(&out)),
            vec![lse_bytes; 10],
            "{out}"
        );
        for (step, (e, c)) in emu.iter().zip(&cpu).enumerate() {
            assert!(
                (e - c).abs() <= 1e-5 * c.abs(),
                "{out}, step {}: cuda-emu loss {e} vs cpu {c}",
                step + 1
            );
        }
    }
}

/// A cuda-emu run resumed from its step-3 checkpoint repeats steps 4-6
/// bit for bit: the device's state (weights, moments, step) round-trips
/// through the checkpoint, and its kernels are deterministic.
#[cfg(feature = "cuda")]
#[test]
fn cuda_emu_resumes_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "train.steps=6",
        "train.checkpoint_every=3",
        "train.keep_last=0",
    ];
    run_ok(dir.path(), &run_args("cuda-emu", "run", &extra));
    let straight = common::losses(&dir.path().join("run"));
    let mut resume = run_args("cuda-emu", "run", &extra);
    resume.splice(
        1..1,
        ["--resume".to_string(), "run/checkpoints/step-3".into()],
    );
    run_ok(dir.path(), &resume);
    let resumed = common::losses(&dir.path().join("run"));
    assert_eq!(straight.len(), 6);
    assert_eq!(resumed, straight, "bit-exact losses after the resume");
}

/// Without an NVIDIA driver, `check` and `run` exit 1 naming the missing
/// library, and nothing panics. (Skipped where a GPU is usable.)
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_driver_is_one_clear_error() {
    if cptrain_plugins::cuda::device::gpu_probe(None).is_ok() {
        eprintln!("skipped: this machine has a usable GPU");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for command in ["check", "run"] {
        let out = cptrain(dir.path(), &[command, "--set", "kernels.device=cuda"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        assert!(
            stderr.contains(
                "kernels.device = \"cuda\": the CUDA driver library (libcuda.so.1) cannot be loaded"
            ),
            "{command}: {stderr}"
        );
    }
}

/// `kernels.precision = "bf16"` on the CPU passes `check` where the CPU has
/// AVX512-BF16 (and plans less activation memory: the LayerNorm and GELU
/// outputs are kept in bf16) and is refused before anything runs, naming
/// the key and the missing feature, where it has not.
#[test]
fn bf16_on_the_cpu_is_checked_against_the_cpus_features() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain(dir.path(), &["check", "--set", "kernels.precision=bf16"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    #[cfg(target_arch = "x86_64")]
    let supported = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    let supported = false;
    if supported {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let activations = |plan: &str| -> f64 {
            let line = plan
                .lines()
                .find(|l| l.contains("activations of one micro-batch"))
                .unwrap_or_else(|| panic!("no activation item in:\n{plan}"));
            let mib = line.split_whitespace().collect::<Vec<_>>();
            assert_eq!(mib[1], "MiB", "{line}");
            mib[0].parse().unwrap()
        };
        let bf16 = activations(&String::from_utf8_lossy(&out.stdout));
        let f32 = activations(&common::cptrain_ok(dir.path(), &["check"]));
        assert!(bf16 < 0.97 * f32, "bf16 plans {bf16} MiB, f32 {f32} MiB");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("kernels.precision = \"bf16\" cannot run on this CPU")
                && stderr.contains("lacks"),
            "{stderr}"
        );
    }
}

/// A binary built without the `cuda` feature says how to build one.
#[cfg(not(feature = "cuda"))]
#[test]
fn without_the_feature_the_error_names_the_build_command() {
    let dir = tempfile::tempdir().unwrap();
    for device in ["cuda", "cuda-emu"] {
        let set = format!("kernels.device={device}");
        let out = cptrain(dir.path(), &["check", "--set", &set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{device}: {stderr}");
        assert!(
            stderr.contains("cargo build --release --features cuda"),
            "{device}: {stderr}"
        );
    }
}
