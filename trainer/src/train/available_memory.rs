//! How much memory this process may still take: the smaller of the
//! kernel's `MemAvailable` and the headroom of the process's cgroup.

use std::fmt;
use std::path::{Path, PathBuf};

/// Bytes the process can allocate before the kernel or its cgroup refuses
/// (or the OOM killer steps in), and where the figure comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailableMemory {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure was read, e.g. `MemAvailable of /proc/meminfo`.
    pub source: String,
}

impl fmt::Display for AvailableMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", human_bytes(self.bytes as f64), self.source)
    }
}

impl AvailableMemory {
    /// The tightest of `MemAvailable` and the limits of the cgroups (v2 or
    /// v1) the process is in, less what they already use; `None` where none
    /// of these can be read (not Linux).
    pub fn detect() -> Option<Self> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_available(&text))
            .map(|bytes| AvailableMemory {
                bytes,
                source: "MemAvailable of /proc/meminfo".into(),
            });
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        cgroup_dirs(&own)
            .into_iter()
            .filter_map(|dir| cgroup_headroom(&dir))
            .chain(meminfo)
            .min_by_key(|a| a.bytes)
    }
}

/// `MemAvailable:  1234 kB` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    crate::metrics::proc_kib_field(meminfo, "MemAvailable")
}

/// The cgroup directories whose limits bind this process, from the text of
/// `/proc/self/cgroup`: its own v2 group and every ancestor (each may set
/// `memory.max`), and its v1 memory group; then the roots, which is where a
/// container's own limit shows when the path is outside its namespace.
fn cgroup_dirs(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let root = match controllers {
            "" => Path::new("/sys/fs/cgroup"),
            c if c.split(',').any(|c| c == "memory") => Path::new("/sys/fs/cgroup/memory"),
            _ => continue,
        };
        let mut dir = root.join(path.trim_start_matches('/'));
        while dir.starts_with(root) {
            dirs.push(dir.clone());
            if !dir.pop() {
                break;
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// What the cgroup at `dir` still allows: its limit less its usage, not
/// counting inactive page cache (the kernel reclaims it before refusing).
/// `None` without a limit or where the files cannot be read.
fn cgroup_headroom(dir: &Path) -> Option<AvailableMemory> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let (limit, usage, stat_key, version) = match read("memory.max") {
        Some(max) => (max, read("memory.current")?, "inactive_file", "v2"),
        None => (
            read("memory.limit_in_bytes")?,
            read("memory.usage_in_bytes")?,
            "total_inactive_file",
            "v1",
        ),
    };
    let limit: u64 = limit.trim().parse().ok()?;
    let usage: u64 = usage.trim().parse().ok()?;
    let reclaimable = read("memory.stat")
        .and_then(|stat| stat_value(&stat, stat_key))
        .unwrap_or(0);
    let used = usage.saturating_sub(reclaimable);
    Some(AvailableMemory {
        bytes: limit.saturating_sub(used),
        source: format!(
            "cgroup {version} limit {} less its usage {}, {}",
            human_bytes(limit as f64),
            human_bytes(used as f64),
            dir.display()
        ),
    })
}

/// The value of `key` in a `memory.stat` text (`key value` lines).
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `1536` → `1.5 KiB`; sizes past the exbibytes print in powers of ten.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes;
    for unit in UNITS {
        if value < 1024.0 {
            return if unit == "B" {
                format!("{value:.0} B")
            } else {
                format!("{value:.1} {unit}")
            };
        }
        value /= 1024.0;
    }
    format!("{bytes:.2e} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_in_bytes() {
        let meminfo =
            "MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   22239280 kB\n";
        assert_eq!(mem_available(meminfo), Some(22_239_280 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_cgroup_dirs_are_the_groups_ancestors_and_roots() {
        let text = "4:memory:/a/b\n1:cpu:/x\n0::/s/t\n";
        let dirs: Vec<String> = cgroup_dirs(text)
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        assert_eq!(
            dirs,
            [
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/memory/a",
                "/sys/fs/cgroup/memory/a/b",
                "/sys/fs/cgroup/s",
                "/sys/fs/cgroup/s/t",
            ]
        );
    }

    #[test]
    fn the_headroom_is_the_limit_less_the_unreclaimable_usage() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("memory.max", "max\n");
        write("memory.current", "100\n");
        assert_eq!(cgroup_headroom(dir.path()), None, "no limit");
        write("memory.max", "1000\n");
        write("memory.stat", "anon 60\ninactive_file 30\n");
        let headroom = cgroup_headroom(dir.path()).unwrap();
        assert_eq!(headroom.bytes, 1000 - (100 - 30));
        assert!(headroom.source.starts_with("cgroup v2 limit"), "{headroom}");
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(366.0 * 1024f64.powi(4)), "366.0 TiB");
        assert_eq!(human_bytes(1e30), "1.00e30 B");
    }
}
