//! CrashLoopBackOff: how long a failed container waits before the kubelet restarts it.
//!
//! Every exit of a container (per pod uid and container name) is recorded with how long the
//! instance ran and when it finished. The first exit waits [`INITIAL_BACKOFF`], each further
//! exit doubles the wait up to [`MAX_BACKOFF`], and an instance that ran for at least
//! [`BACKOFF_RESET`] starts the sequence over. The wait is measured from the finish time of
//! the exited instance. Recording is idempotent: an exit at or before the last recorded
//! finish time changes nothing, so the same relist may be recorded any number of times.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::runtime::{ContainerState, PodRuntime};

/// Wait after the first failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran at least this long has its back-off reset.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// What a back-off entry is kept for: one container name of one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackoffKey {
    /// Pod uid.
    pub pod_uid: String,
    /// Container name in the pod spec.
    pub container: String,
}

impl BackoffKey {
    /// The key of container `container` of pod `pod_uid`.
    pub fn new(pod_uid: impl Into<String>, container: impl Into<String>) -> Self {
        Self {
            pod_uid: pod_uid.into(),
            container: container.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Wait that applies after the exit at `finished_at_ns`.
    delay: Duration,
    /// Finish time of the last recorded exit, nanoseconds since the epoch.
    finished_at_ns: i64,
}

/// Back-off state of every container that exited (CrashLoopBackOff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    entries: BTreeMap<BackoffKey, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Upstream's limits: 10 s doubling to 300 s, reset after 10 minutes of running.
    pub fn new() -> Self {
        Self::with_limits(INITIAL_BACKOFF, MAX_BACKOFF, BACKOFF_RESET)
    }

    /// Other limits (tests, tuning).
    pub fn with_limits(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Self {
            initial,
            max,
            reset_after,
            entries: BTreeMap::new(),
        }
    }

    /// Records that an instance of `key` ran for `ran_for` and finished at `finished_at_ns`.
    /// An exit not newer than the last recorded one is ignored.
    pub fn record_exit(&mut self, key: &BackoffKey, ran_for: Duration, finished_at_ns: i64) {
        let prev = self.entries.get(key).copied();
        if prev.is_some_and(|e| finished_at_ns <= e.finished_at_ns) {
            return;
        }
        let delay = self.delay_following(prev, ran_for);
        self.entries.insert(
            key.clone(),
            Entry {
                delay,
                finished_at_ns,
            },
        );
    }

    /// Records every exited container instance of a pod (oldest finish first) that is not
    /// recorded yet. Call with each relist of the pod.
    pub fn record_exits(&mut self, pod_uid: &str, rt: &PodRuntime) {
        let mut exited: Vec<_> = rt
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Exited)
            .collect();
        exited.sort_by_key(|c| c.finished_at);
        for c in exited {
            self.record_exit(
                &BackoffKey::new(pod_uid, c.name.as_str()),
                ran_for(c.started_at, c.finished_at),
                c.finished_at,
            );
        }
    }

    /// The wait in force for `key`: the one following its last recorded exit, or the
    /// initial wait when none was recorded.
    pub fn next_delay(&self, key: &BackoffKey) -> Duration {
        self.entries.get(key).map_or(self.initial, |e| e.delay)
    }

    /// Time left, at `now_ns`, before `key` may be restarted after its last recorded exit;
    /// `None` when it may be restarted now (or never exited).
    pub fn remaining(&self, key: &BackoffKey, now_ns: i64) -> Option<Duration> {
        let e = self.entries.get(key)?;
        remaining_after(e.finished_at_ns, e.delay, now_ns)
    }

    /// The wait that follows the exit of an instance of `key` that ran for `ran_for` and
    /// finished at `finished_at_ns`: the recorded one if that exit (or a later one) was
    /// recorded, otherwise the one [`Backoff::record_exit`] would record for it.
    pub fn delay_for_exit(
        &self,
        key: &BackoffKey,
        ran_for: Duration,
        finished_at_ns: i64,
    ) -> Duration {
        match self.entries.get(key).copied() {
            Some(e) if finished_at_ns <= e.finished_at_ns => e.delay,
            prev => self.delay_following(prev, ran_for),
        }
    }

    /// Forgets every container of a pod (the pod is gone).
    pub fn forget_pod(&mut self, pod_uid: &str) {
        self.entries.retain(|k, _| k.pod_uid != pod_uid);
    }

    /// Keeps only the entries of the given pods.
    pub fn retain_pods(&mut self, pod_uids: &BTreeSet<String>) {
        self.entries.retain(|k, _| pod_uids.contains(&k.pod_uid));
    }

    /// Number of containers with a recorded exit.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no exit is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn delay_following(&self, prev: Option<Entry>, ran_for: Duration) -> Duration {
        match prev {
            Some(e) if ran_for < self.reset_after => e.delay.saturating_mul(2).min(self.max),
            _ => self.initial,
        }
    }
}

/// How long an instance ran, from its start and finish times (zero when unknown).
pub fn ran_for(started_at_ns: i64, finished_at_ns: i64) -> Duration {
    if started_at_ns <= 0 || finished_at_ns <= started_at_ns {
        return Duration::ZERO;
    }
    Duration::from_nanos(finished_at_ns.abs_diff(started_at_ns))
}

/// Time left of a wait of `delay` from `from_ns`, at `now_ns`; `None` when over.
pub fn remaining_after(from_ns: i64, delay: Duration, now_ns: i64) -> Option<Duration> {
    let delay_ns = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
    let until = from_ns.saturating_add(delay_ns);
    (until > now_ns).then(|| Duration::from_nanos(until.abs_diff(now_ns)))
}

/// A duration written the way Go's `time.Duration` prints it (`10s`, `1m20s`, `5m0s`,
/// `1h0m0s`, `1.5s`, `250ms`), as upstream's messages show it.
pub fn go_duration(d: Duration) -> String {
    let total_ns = d.as_nanos();
    if total_ns == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if total_ns < 1_000_000_000 {
        let (unit, scale) = if total_ns < 1_000 {
            ("ns", 1)
        } else if total_ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        let _ = write!(out, "{}", total_ns / scale);
        push_fraction(&mut out, total_ns % scale, scale);
        out.push_str(unit);
        return out;
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        let _ = write!(out, "{h}h{m}m");
    } else if m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    push_fraction(&mut out, u128::from(d.subsec_nanos()), 1_000_000_000);
    out.push('s');
    out
}

/// Appends `.digits` of `rem / scale` (scale a power of ten), trailing zeros trimmed.
fn push_fraction(out: &mut String, rem: u128, scale: u128) {
    if rem == 0 {
        return;
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_formats() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(42), "42ns"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }

    #[test]
    fn remaining_after_counts_down() {
        let s = 1_000_000_000;
        assert_eq!(
            remaining_after(100 * s, Duration::from_secs(10), 104 * s),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            remaining_after(100 * s, Duration::from_secs(10), 110 * s),
            None
        );
    }
}
