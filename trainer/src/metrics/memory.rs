/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`),
/// or `None` where that file does not exist (non-Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Reads the `VmHWM:  1234 kB` line of a `/proc/<pid>/status` text.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    proc_kib_field(status, "VmHWM")
}

/// The bytes of a `Key:  1234 kB` line of a `/proc` text (`status`,
/// `meminfo`), or `None` when the key or its unit is missing.
pub(crate) fn proc_kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark() {
        let status =
            "Name:\tcptrain\nVmPeak:\t  99999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t  1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() > 1 << 20);
        }
    }
}
