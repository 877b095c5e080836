//! Runs that never mix, never hang, never lie: an out_dir belongs to one
//! run, a resume continues that run (checked), checkpoints are verified and
//! survive kill -9 and a full disk, and exit codes say what happened.

mod common;

use common::{
    checkpoint_weights, cptrain, metrics, run_sets, send_signal, sets, snapshot, spawn,
    wait_for_records, wait_within, with,
};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Generous bound for a process that should end by itself.
const LIMIT: Duration = Duration::from_secs(120);

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> Output {
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

fn failed(output: Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    stderr(&output)
}

fn run_id(checkpoint: &Path) -> String {
    let text = std::fs::read_to_string(checkpoint.join("trainer_state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["run"]["run_id"].as_str().unwrap().to_string()
}

fn steps_of(out: &Path) -> Vec<u64> {
    metrics(out)
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_second_run_in_the_same_out_dir_is_refused_while_the_first_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first_args = run_sets(&out, 300, &["train.checkpoint_every=50"]);
    let mut first = spawn(dir.path(), &with(&["run"], &first_args));
    wait_for_records(&mut first, &out, 2, LIMIT);
    let second = failed(cptrain(dir.path(), &with(&["run"], &first_args)));
    let holder = format!("in use by another run (pid {} on host", first.id());
    assert!(second.contains(&holder), "{second}");
    ok(wait_within(first, LIMIT));
    assert_eq!(steps_of(&out), (1..=300).collect::<Vec<_>>());
    for step in (50..=300).step_by(50) {
        let done = out.join(format!("checkpoints/step-{step}/DONE"));
        assert!(done.is_file(), "{}", done.display());
    }
    // The checkpoints verify: a resume continues from the newest.
    let more = run_sets(&out, 301, &[]);
    ok(cptrain(dir.path(), &with(&["run", "--resume"], &more)));
}

#[cfg(unix)]
#[test]
fn a_fresh_run_never_touches_another_runs_files_and_resumes_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ok(cptrain(
        dir.path(),
        &with(&["run"], &run_sets(&out, 10, &[])),
    ));
    let before = snapshot(&out);
    let earlier_id = run_id(&out.join("checkpoints/step-10"));

    let refused = failed(cptrain(
        dir.path(),
        &with(&["run"], &run_sets(&out, 10, &[])),
    ));
    for part in ["already holds a run", "--resume", "train.overwrite=true"] {
        assert!(refused.contains(part), "{part}: {refused}");
    }
    assert_eq!(snapshot(&out), before, "the refused run touched nothing");

    // Moved aside, the earlier run is intact; the new run is interrupted...
    let new_args = run_sets(&out, 300, &["train.overwrite=true"]);
    let moved_aside = || -> Vec<PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("out.replaced-"))
            .collect()
    };
    let mut child = spawn(dir.path(), &with(&["run"], &new_args));
    while moved_aside().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for_records(&mut child, &out, 3, LIMIT);
    send_signal(&child, "-INT");
    let stopped = wait_within(child, LIMIT);
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let aside = moved_aside();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(snapshot(&aside[0]), before);

    // ... and `--resume` continues its own checkpoint, not the other run's.
    let resumed = ok(cptrain(dir.path(), &with(&["run", "--resume"], &new_args)));
    let new_id = run_id(&out.join("checkpoints/step-300"));
    assert_ne!(new_id, earlier_id);
    assert!(
        stderr(&resumed).contains(&format!("run={new_id}")),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(steps_of(&out), (1..=300).collect::<Vec<_>>());
    assert_eq!(snapshot(&aside[0]), before);
}

#[test]
fn a_resume_refuses_changes_of_meaning_with_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ok(cptrain(
        dir.path(),
        &with(&["run"], &run_sets(&out, 6, &[])),
    ));
    for (change, diff) in [
        ("train.seed=7", "train.seed: 1337 → 7"),
        ("model.n_embd=32", "model.n_embd: 64 → 32"),
        ("data.task=reverse", "data.task: \"copy\" → \"reverse\""),
        ("optimizer.lr=0.01", "optimizer.lr: 0.003 → 0.01"),
    ] {
        let args = run_sets(&out, 8, &[change]);
        let err = failed(cptrain(dir.path(), &with(&["run", "--resume"], &args)));
        assert!(err.contains(diff), "{change}: {err}");
        assert!(err.contains("train.allow_config_change=true"), "{err}");
    }
    // Steps, cadences, threads and layout keep the run's meaning.
    let allowed = run_sets(
        &out,
        8,
        &[
            "kernels.threads=1",
            "train.eval_every=2",
            "parallel.world_size=2",
            "parallel.cp=2",
        ],
    );
    ok(cptrain(dir.path(), &with(&["run", "--resume"], &allowed)));
    assert_eq!(steps_of(&out), (1..=8).collect::<Vec<_>>());
    // Accepted explicitly, the change is recorded with the next step.
    let changed = run_sets(&out, 9, &["train.seed=7", "train.allow_config_change=true"]);
    ok(cptrain(dir.path(), &with(&["run", "--resume"], &changed)));
    let last = metrics(&out).pop().unwrap();
    assert_eq!(
        last["config_changes"],
        serde_json::json!(["train.seed: 1337 → 7 (from --set train.seed=7)"])
    );
}

/// A run that activated a profile through `app.profiles` and overrode one
/// of its keys on the command line resumes as it was: its saved
/// configuration already holds the profile's values, so the profile is not
/// applied over it again.
#[test]
fn a_resume_keeps_overrides_of_a_profile_activated_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/wide.toml"),
        "[model]\nn_embd = 64\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let keys = ["app.profiles=wide", "model.n_embd=32"];
    ok(cptrain(
        dir.path(),
        &with(&["run"], &run_sets(&out, 2, &keys)),
    ));
    let more = run_sets(&out, 4, &[]);
    ok(cptrain(dir.path(), &with(&["run", "--resume"], &more)));
    assert_eq!(steps_of(&out), (1..=4).collect::<Vec<_>>());
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("n_embd = 32"), "{config}");
}

#[test]
fn a_resume_refuses_changed_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let text: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let data = dir.path().join("train.txt");
    std::fs::write(&data, &text).unwrap();
    let data_set = format!("data.path={}", data.display());
    let keys = |steps| {
        run_sets(
            &out,
            steps,
            &["data.source=text", "model.vocab_size=256", &data_set],
        )
    };
    ok(cptrain(dir.path(), &with(&["run"], &keys(4))));
    let mut edited = text.clone();
    edited[20_000] = b'!';
    std::fs::write(&data, &edited).unwrap();
    let err = failed(cptrain(dir.path(), &with(&["run", "--resume"], &keys(6))));
    assert!(
        err.contains("the data differs") && err.contains("data.path:"),
        "{err}"
    );
    let mut allowed = keys(6);
    allowed.extend(sets(&["train.allow_config_change=true".into()]));
    ok(cptrain(dir.path(), &with(&["run", "--resume"], &allowed)));
    let first_resumed = &metrics(&out)[4];
    let recorded = first_resumed["config_changes"].to_string();
    assert!(recorded.contains("data.path"), "{recorded}");
}

#[test]
fn a_damaged_newest_checkpoint_is_named_and_never_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = run_sets(&out, 6, &["train.checkpoint_every=2"]);
    ok(cptrain(dir.path(), &with(&["run"], &args)));
    let model = out.join("checkpoints/step-6/model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    let more = run_sets(&out, 8, &["train.checkpoint_every=2"]);
    let err = failed(cptrain(dir.path(), &with(&["run", "--resume"], &more)));
    for part in [
        "the newest checkpoint",
        "step-6 cannot be used",
        "model.safetensors is corrupt: checksum",
        "The newest valid one is",
        "step-4 (step 4)",
        "--fallback",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let fell_back = ok(cptrain(
        dir.path(),
        &with(&["run", "--resume", "--fallback"], &more),
    ));
    assert!(stderr(&fell_back).contains("resuming from an older one"));
    assert_eq!(steps_of(&out), (1..=8).collect::<Vec<_>>());
}

#[cfg(unix)]
#[test]
fn sigterm_mid_run_saves_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = run_sets(&out, 3000, &["train.checkpoint_every=1"]);
    let mut child = spawn(dir.path(), &with(&["run"], &args));
    wait_for_records(&mut child, &out, 3, LIMIT);
    send_signal(&child, "-TERM");
    let output = wait_within(child, LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(143), "{err}");
    let done = steps_of(&out).len();
    assert!(done < 3000);
    let checkpoint = out.join(format!("checkpoints/step-{done}"));
    assert!(
        err.contains(&format!("stopped by SIGTERM after step {done}")),
        "{err}"
    );
    assert!(err.contains(&checkpoint.display().to_string()) && err.contains("--resume"));
    // The scheduled save of that step is kept, not rewritten.
    assert!(err.contains("already saved; kept"), "{err}");
}

/// Evaluation checks for a stop between batches: a SIGINT during a long
/// evaluation ends the run within seconds, with the step saved.
#[cfg(unix)]
#[test]
fn sigint_during_evaluation_stops_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // 4000 of the synthetic data's 4096 validation batches: seconds of evaluation.
    let args = run_sets(
        &out,
        10,
        &[
            "train.eval_every=2",
            "train.eval_batches=4000",
            "model.n_embd=128",
            "model.n_layer=4",
        ],
    );
    let mut child = spawn(dir.path(), &with(&["run"], &args));
    // Step 1 is recorded; step 2 trains at once and starts evaluating.
    wait_for_records(&mut child, &out, 1, LIMIT);
    std::thread::sleep(Duration::from_millis(300));
    send_signal(&child, "-INT");
    let output = wait_within(child, Duration::from_secs(20));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(err.contains("stopped by SIGINT after step 2"), "{err}");
    assert!(out.join("checkpoints/step-2/DONE").is_file());
}

#[cfg(unix)]
#[test]
fn an_interrupt_before_the_first_step_says_nothing_was_trained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // The startup matmul probe (about a second) keeps the run from its first step.
    let args = sets(&[
        format!("train.out_dir={}", out.display()),
        "metrics.progress=never".into(),
    ]);
    for delay_ms in [150, 400, 800] {
        let child = spawn(dir.path(), &with(&["run"], &args));
        std::thread::sleep(Duration::from_millis(delay_ms));
        send_signal(&child, "-INT");
        let output = wait_within(child, LIMIT);
        let err = stderr(&output);
        if output.status.code().is_none() {
            continue; // the signal came before the handler was installed
        }
        if output.status.code() == Some(130) {
            assert!(
                err.contains("before the first step: nothing was trained"),
                "{err}"
            );
            assert!(!out.join("checkpoints").exists());
            return;
        }
        panic!("unexpected exit {:?}: {err}", output.status);
    }
    panic!("no interrupt landed between the handler's start and the first step");
}

/// A small xorshift generator: random kill moments, reproducible from the
/// printed seed.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// kill -9 at random moments of runs that checkpoint every step, at least
/// 10 kills in all: the newest complete checkpoint always resumes, and each
/// run ends bit-exactly where an uninterrupted one does. (A fast machine
/// may finish a run before 10 kills land; the next round starts afresh.)
#[cfg(unix)]
#[test]
fn kill_9_during_checkpoint_writes_always_resumes_bit_exactly() {
    const STEPS: u64 = 80;
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let shape = ["model.n_embd=128", "model.n_layer=2", "train.keep_last=2"];
    let keys = |out: &Path| {
        let mut keys: Vec<&str> = shape.to_vec();
        keys.extend(["train.checkpoint_every=1", "train.overwrite=true"]);
        run_sets(out, STEPS, &keys)
    };
    ok(cptrain(dir.path(), &with(&["run"], &keys(&whole))));
    let losses = |out: &Path| -> Vec<(u64, f64)> {
        metrics(out)
            .iter()
            .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
            .collect()
    };

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill moments seed: {seed}");
    let mut kills = 0;
    for round in 0.. {
        if kills >= 10 {
            break;
        }
        let killed = dir.path().join(format!("killed-{round}"));
        let finished = || {
            killed
                .join(format!("checkpoints/step-{STEPS}/DONE"))
                .is_file()
        };
        while !finished() {
            let resume = std::fs::read_dir(killed.join("checkpoints")).is_ok_and(|mut entries| {
                entries.any(|e| e.is_ok_and(|e| e.path().join("DONE").is_file()))
            });
            let head: &[&str] = if resume {
                &["run", "--resume"]
            } else {
                &["run"]
            };
            let args = keys(&killed);
            let mut child = spawn(dir.path(), &with(head, &args));
            if kills >= 10 {
                ok(wait_within(child, LIMIT));
                continue;
            }
            std::thread::sleep(Duration::from_millis(150 + xorshift(&mut seed) % 300));
            if child.try_wait().unwrap().is_some() {
                ok(wait_within(child, LIMIT));
                continue;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
        }
        assert_eq!(
            checkpoint_weights(&whole, STEPS),
            checkpoint_weights(&killed, STEPS),
            "round {round}: the final weights equal the uninterrupted run's, bit for bit"
        );
        assert_eq!(losses(&whole), losses(&killed), "round {round}");
    }
}

/// Runs `script` in a private mount namespace (as root, or as a mapped root
/// in a user namespace), so the tmpfs it mounts vanishes with it; `None`
/// when neither is permitted here.
#[cfg(target_os = "linux")]
fn in_mount_namespace(script: &str, vars: &[(&str, &Path)]) -> Option<Output> {
    for flags in [&["-m"][..], &["-r", "-m"][..]] {
        let mut command = std::process::Command::new("unshare");
        command.args(flags).args(["sh", "-c", script]);
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = command.output().ok()?;
        let err = stderr(&output);
        if !(err.contains("unshare failed") || err.contains("Operation not permitted")) {
            return Some(output);
        }
    }
    None
}

/// A disk that fills up mid-checkpoint: a clear error naming the file, the
/// previous checkpoint intact, no temporary directory left, and once there
/// is room the resume works.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_fails_the_save_cleanly_and_the_resume_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // One checkpoint of the default model (1.3 MB) fits in 2 MiB, two do not.
    let args = run_sets(&out, 12, &["train.checkpoint_every=5", "train.keep_last=1"]).join(" ");
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs \"$OUT\" || exit 90
         \"$BIN\" run {args}; echo \"first exit $?\"
         ls -a \"$OUT/checkpoints\"
         mount -o remount,size=32m \"$OUT\"
         \"$BIN\" run --resume {args}; echo \"resume exit $?\"
         ls \"$OUT/checkpoints\""
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_cptrain"));
    let Some(output) = in_mount_namespace(&script, &[("OUT", &out), ("BIN", bin)]) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (root or user namespaces)"
        );
        eprintln!("skipped: no mount namespace here (not root, no user namespaces)");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert_ne!(output.status.code(), Some(90), "mount failed: {text}");
    assert!(text.contains("first exit 1"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        text.contains("checkpoints/.tmp-step-10-"),
        "names the file: {text}"
    );
    let listing_after_failure = text
        .split("first exit 1")
        .nth(1)
        .and_then(|rest| rest.split("resume exit").next())
        .unwrap();
    assert!(listing_after_failure.contains("step-5"), "{text}");
    assert!(
        !listing_after_failure.contains(".tmp-"),
        "no temp dir left: {text}"
    );
    assert!(text.contains("resuming"), "{text}");
    assert!(text.contains("resume exit 0"), "{text}");
    assert!(text.trim_end().ends_with("step-12"), "{text}");
}
