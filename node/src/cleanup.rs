//! Forceful teardown helpers: find processes by their command line, kill them and wait,
//! unmount everything below a directory, and remove a cgroup subtree in every hierarchy.
//!
//! These run when a node is torn down, after the polite path (CRI removal, SIGTERM), and make
//! sure nothing is left even when a runtime is wedged or a test failed half-way.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pids of processes whose command line contains `needle` (never this process).
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `signal` to each pid and waits up to `timeout` for all of them to exit.
/// Returns the pids still alive.
pub fn signal_and_wait(pids: &[i32], signal: i32, timeout: Duration) -> Vec<i32> {
    for &pid in pids {
        // SAFETY: kill(2) has no memory effects; a stale pid just yields ESRCH.
        unsafe { libc::kill(pid, signal) };
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then SIGKILL after `grace`; waits for the exit either way.
pub fn terminate(pids: &[i32], grace: Duration) {
    let left = signal_and_wait(pids, libc::SIGTERM, grace);
    if !left.is_empty() {
        let still = signal_and_wait(&left, libc::SIGKILL, Duration::from_secs(5));
        if !still.is_empty() {
            tracing::warn!(?still, "processes survived SIGKILL");
        }
    }
}

/// Paths of the unix sockets `pid` holds open (bound, named ones only).
pub fn unix_sockets_of(pid: i32) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: HashSet<String> = fds
        .filter_map(|e| {
            let target = std::fs::read_link(e.ok()?.path()).ok()?;
            let t = target.to_str()?;
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) else {
        return Vec::new();
    };
    // Columns: Num RefCount Protocol Flags Type St Inode Path
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (inode, path) = (cols.get(6)?, cols.get(7)?);
            (inodes.contains(*inode) && path.starts_with('/')).then(|| PathBuf::from(path))
        })
        .collect()
}

/// Mount points at or below `dir`, deepest first, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Detaches every mount at or below `dir`. Returns how many were unmounted.
pub fn unmount_under(dir: &Path) -> usize {
    let mut count = 0;
    // Stacked mounts on one point need one umount each: repeat until none is left.
    for _ in 0..16 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: c is a valid NUL-terminated path for the duration of the call.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                count += 1;
            }
        }
    }
    count
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape_mount_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of every cgroup hierarchy (v1 controllers and the v2 unified one).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let point = left.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(unescape_mount_path(point)))
        })
        .collect()
}

/// Kills every process in the cgroup `relative` (e.g. `/berth-test-1`) and its descendants,
/// in every hierarchy, then removes the directories. Returns the directories removed.
pub fn remove_cgroup_tree(relative: &str) -> usize {
    let rel = relative.trim_start_matches('/');
    if rel.is_empty() {
        return 0; // never the root cgroup
    }
    let mut removed = 0;
    for mount in cgroup_mounts() {
        let top = mount.join(rel);
        if top.is_dir() {
            removed += remove_cgroup_dir(&top);
        }
    }
    removed
}

fn remove_cgroup_dir(dir: &Path) -> usize {
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                removed += remove_cgroup_dir(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if !pids.is_empty() {
            signal_and_wait(&pids, libc::SIGKILL, Duration::from_secs(2));
        }
        if std::fs::remove_dir(dir).is_ok() {
            return removed + 1;
        }
        if Instant::now() >= deadline {
            tracing::warn!(cgroup = %dir.display(), "could not remove cgroup");
            return removed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_path(r"/plain/path"), "/plain/path");
        assert_eq!(unescape_mount_path(r"/trail\04"), r"/trail\04");
    }

    #[test]
    fn finds_and_kills_a_process_by_command_line() {
        let marker = format!("berth-cleanup-test-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .args(["-c", &format!("while :; do sleep 0.1; done # {marker}")])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until the child has exec'd, its command line is still ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        while processes_mentioning(&marker).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(processes_mentioning(&marker), vec![pid]);
        terminate(&processes_mentioning(&marker), Duration::from_secs(2));
        child.wait().unwrap();
        assert!(processes_mentioning(&marker).is_empty());
    }

    #[test]
    fn the_root_cgroup_is_never_removed() {
        assert_eq!(remove_cgroup_tree("/"), 0);
        assert_eq!(remove_cgroup_tree(""), 0);
    }
}
