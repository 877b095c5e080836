//! The end-of-run report of `metrics.phase_profile`.

use std::fmt::Write as _;

use crate::model::{Phase, PhaseFlops, Profile};

/// Rank 0's per-phase table over `steps` steps, with its rates for the
/// `flops` it computed in them, and, with several ranks, one line per rank
/// with its total and communication time (a rank that waits much longer
/// than the others waits for them).
pub fn phase_report(steps: u64, profiles: &[Profile], flops: &PhaseFlops) -> String {
    let mut out = format!(
        "per-phase time over {steps} training steps, rank 0 of {}:\n",
        profiles.len()
    );
    if let Some(first) = profiles.first() {
        out += &first.table(Some(flops));
    }
    if profiles.len() > 1 {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        out += &format!(
            "\n{:<6} {:>10} {:>16} {:>7}\n",
            "rank", "total ms", "communication ms", "share"
        );
        for (rank, profile) in profiles.iter().enumerate() {
            let total = profile.total();
            let comm = profile.phase_total(Phase::Communication);
            let share = 100.0 * ms(comm) / ms(total).max(f64::MIN_POSITIVE);
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{rank:<6} {:>10.2} {:>16.2} {share:>6.1}%",
                ms(total),
                ms(comm)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, Pass};
    use std::time::Duration;

    /// Attention's forward is `4·n_layer·n_embd·seq_len = 4·10⁴` FLOPs a
    /// token: 75 000 tokens make 3 GFLOP.
    fn flops() -> PhaseFlops {
        let cfg = ModelConfig {
            n_layer: 1,
            n_head: 1,
            n_embd: 100,
            vocab_size: 10,
            seq_len: 100,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        };
        PhaseFlops::new(&cfg, 75_000.0)
    }

    fn profile(attention_ms: u64, comm_ms: u64) -> Profile {
        let mut p = Profile::new(true);
        p.add(
            Pass::Forward,
            Phase::Attention,
            Duration::from_millis(attention_ms),
        );
        p.add(
            Pass::Update,
            Phase::Communication,
            Duration::from_millis(comm_ms),
        );
        p
    }

    #[test]
    fn one_rank_gets_its_table_and_several_a_line_each() {
        let one = phase_report(3, &[profile(30, 0)], &flops());
        assert!(
            one.starts_with("per-phase time over 3 training steps, rank 0 of 1:\n"),
            "{one}"
        );
        assert!(
            one.contains("attention") && !one.contains("communication ms"),
            "{one}"
        );
        // 3 GFLOP in 30 ms forward; no backward time.
        let attention = one.lines().find(|l| l.starts_with("attention")).unwrap();
        assert!(attention.ends_with(" 100            -"), "{attention}");

        let two = phase_report(3, &[profile(30, 10), profile(20, 20)], &flops());
        let lines: Vec<&str> = two.lines().collect();
        let rank1 = lines
            .iter()
            .find(|l| l.starts_with("1 "))
            .expect("a line for rank 1");
        assert_eq!(
            rank1.split_whitespace().collect::<Vec<_>>(),
            ["1", "40.00", "20.00", "50.0%"]
        );
        assert!(two.contains("communication"), "{two}");
    }
}
