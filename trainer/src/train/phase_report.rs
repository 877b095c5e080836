//! The end-of-run report of `metrics.phase_profile`.

use std::fmt::Write as _;

use crate::model::{Phase, Profile};

/// Rank 0's per-phase table over `steps` steps and, with several ranks, one
/// line per rank with its total and communication time (a rank that waits
/// much longer than the others waits for them).
pub fn phase_report(steps: u64, profiles: &[Profile]) -> String {
    let mut out = format!(
        "per-phase time over {steps} training steps, rank 0 of {}:\n",
        profiles.len()
    );
    if let Some(first) = profiles.first() {
        out += &first.table();
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
    use crate::model::Pass;
    use std::time::Duration;

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
        let one = phase_report(3, &[profile(30, 0)]);
        assert!(
            one.starts_with("per-phase time over 3 training steps, rank 0 of 1:\n"),
            "{one}"
        );
        assert!(
            one.contains("attention") && !one.contains("communication ms"),
            "{one}"
        );

        let two = phase_report(3, &[profile(30, 10), profile(20, 20)]);
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
