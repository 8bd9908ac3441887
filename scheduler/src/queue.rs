//! The scheduling queue: which pending pod to try next, and when to retry one that did not
//! fit. Pure: the caller passes the current time (`now: Instant`) into every method that
//! needs it, so tests drive time by hand.
//!
//! A pod is in exactly one state ([`PodState`]):
//!
//! - **active**: waiting its turn, ordered by priority (`spec.priority`, higher first), then
//!   by when it entered the queue or last failed (older first, as upstream's `PrioritySort`),
//!   then by creation time, then by key;
//! - **in flight**: popped and being scheduled; the caller reports [`done`] or [`failed`];
//! - **back-off**: failed recently and waits `1s * 2^(attempts-1)`, at most 10 s (upstream's
//!   defaults), before becoming active;
//! - **unschedulable**: failed and waits for a cluster change
//!   ([`move_all_to_active_or_backoff`]), which moves it to back-off if its back-off has not
//!   run out yet and to active otherwise; after 5 minutes it is retried anyway;
//! - **gated**: has `spec.schedulingGates` and waits for an update that removes them.
//!
//! As upstream, a pod that fails after a cluster change arrived during its attempt goes to
//! back-off rather than unschedulable, since the change may already have made room; so does
//! one whose spec or labels changed during its attempt.
//!
//! [`done`]: SchedulingQueue::done
//! [`failed`]: SchedulingQueue::failed
//! [`move_all_to_active_or_backoff`]: SchedulingQueue::move_all_to_active_or_backoff

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::framework::{pod_key, pod_priority};

/// Upstream's initial back-off.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Upstream's longest back-off.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without a cluster change before it is retried.
pub const DEFAULT_MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// Queue timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// The back-off after the first failed attempt; it doubles with each further attempt.
    pub initial_backoff: Duration,
    /// The longest back-off.
    pub max_backoff: Duration,
    /// How long an unschedulable pod waits for a cluster change before it is retried anyway
    /// (`Duration::MAX`: never).
    pub max_unschedulable: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_unschedulable: DEFAULT_MAX_UNSCHEDULABLE,
        }
    }
}

/// Where a pod is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodState {
    /// Waiting its turn.
    Active,
    /// Popped, being scheduled.
    InFlight,
    /// Failed recently; waits out its back-off.
    Backoff,
    /// Failed; waits for a cluster change.
    Unschedulable,
    /// Has scheduling gates.
    Gated,
}

/// A change in the cluster that may let unschedulable pods fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    /// A node appeared.
    NodeAdded,
    /// A node changed (labels, taints, allocatable, conditions, cordon).
    NodeUpdated,
    /// A pod assigned to a node changed (finished, shrank).
    AssignedPodUpdated,
    /// A pod assigned to a node was deleted, freeing its resources.
    AssignedPodDeleted,
}

impl fmt::Display for ClusterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterEvent::NodeAdded => "NodeAdd",
            ClusterEvent::NodeUpdated => "NodeUpdate",
            ClusterEvent::AssignedPodUpdated => "AssignedPodUpdate",
            ClusterEvent::AssignedPodDeleted => "AssignedPodDelete",
        })
    }
}

/// The active queue's order: priority (higher first), queue time, creation time, key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ActiveOrder {
    priority: Reverse<i32>,
    since: Instant,
    created: Option<Time>,
    key: String,
}

#[derive(Debug, Clone)]
struct Entry {
    pod: Pod,
    state: PodState,
    /// When the pod entered the queue or last failed.
    timestamp: Instant,
    /// Scheduling attempts so far (pops).
    attempts: u32,
    /// When the current back-off ends.
    backoff_until: Option<Instant>,
    /// When the pod became unschedulable.
    unschedulable_since: Option<Instant>,
    /// The scheduling cycle of the last pop.
    popped_cycle: u64,
    /// Whether the pod's spec or metadata changed while in flight.
    updated_in_flight: bool,
}

impl Entry {
    fn active_order(&self, key: &str) -> ActiveOrder {
        ActiveOrder {
            priority: Reverse(pod_priority(&self.pod)),
            since: self.timestamp,
            created: self.pod.metadata.creation_timestamp.clone(),
            key: key.to_string(),
        }
    }
}

fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

/// Whether an update may change the scheduling outcome: anything but status and
/// bookkeeping metadata (resource version, generation, managed fields, finalizers) differs.
fn meaningful_update(old: &Pod, new: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.generation = None;
        p.metadata.managed_fields = None;
        p.metadata.finalizers = None;
        p
    };
    strip(old) != strip(new)
}

/// Pending pods in scheduling order, with back-off for failures. Keys are
/// `namespace/name` ([`pod_key`]); the queue keeps the latest pod object for each.
#[derive(Debug, Clone, Default)]
pub struct SchedulingQueue {
    config: QueueConfig,
    entries: HashMap<String, Entry>,
    active: BTreeSet<ActiveOrder>,
    /// (back-off end, key).
    backoff: BTreeSet<(Instant, String)>,
    /// (unschedulable since, key).
    unschedulable: BTreeSet<(Instant, String)>,
    /// Incremented at each pop.
    cycle: u64,
    /// The cycle current at the last cluster event.
    move_request_cycle: u64,
}

impl SchedulingQueue {
    /// An empty queue with upstream's timings.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue with these timings.
    pub fn with_config(config: QueueConfig) -> Self {
        SchedulingQueue {
            config,
            ..Self::default()
        }
    }

    /// The timings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// How long a pod waits after its `attempts`-th failed attempt: the initial back-off
    /// doubled per attempt after the first, capped at the maximum.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.config.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.config.max_backoff {
                return self.config.max_backoff;
            }
        }
        d.min(self.config.max_backoff)
    }

    /// Takes a pod out of the index of its current state (the entry stays).
    fn detach(&mut self, key: &str) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        match e.state {
            PodState::Active => {
                self.active.remove(&e.active_order(key));
            }
            PodState::Backoff => {
                if let Some(until) = e.backoff_until {
                    self.backoff.remove(&(until, key.to_string()));
                }
            }
            PodState::Unschedulable => {
                if let Some(since) = e.unschedulable_since {
                    self.unschedulable.remove(&(since, key.to_string()));
                }
            }
            PodState::InFlight | PodState::Gated => {}
        }
    }

    /// Puts a detached pod into a state and its index.
    fn attach(&mut self, key: &str, state: PodState, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.state = state;
        match state {
            PodState::Active => {
                self.active.insert(e.active_order(key));
            }
            PodState::Backoff => {
                let until = *e.backoff_until.get_or_insert(now);
                self.backoff.insert((until, key.to_string()));
            }
            PodState::Unschedulable => {
                e.unschedulable_since = Some(now);
                self.unschedulable.insert((now, key.to_string()));
            }
            PodState::InFlight | PodState::Gated => {}
        }
    }

    fn set_state(&mut self, key: &str, state: PodState, now: Instant) {
        self.detach(key);
        self.attach(key, state, now);
    }

    /// Back-off while the pod's back-off lasts, active after.
    fn active_or_backoff(&self, key: &str, now: Instant) -> PodState {
        let backing_off = self
            .entries
            .get(key)
            .and_then(|e| e.backoff_until)
            .is_some_and(|until| until > now);
        if backing_off {
            PodState::Backoff
        } else {
            PodState::Active
        }
    }

    /// Adds a pending pod (active, or gated when it has scheduling gates). A pod already
    /// queued under the same key is updated instead.
    pub fn add(&mut self, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        if self.entries.contains_key(&key) {
            self.update(pod, now);
            return;
        }
        let state = if is_gated(&pod) {
            PodState::Gated
        } else {
            PodState::Active
        };
        self.entries.insert(
            key.clone(),
            Entry {
                pod,
                state,
                timestamp: now,
                attempts: 0,
                backoff_until: None,
                unschedulable_since: None,
                popped_cycle: 0,
                updated_in_flight: false,
            },
        );
        self.attach(&key, state, now);
    }

    /// Replaces a queued pod's object (a watch update); adds it if unknown. An
    /// unschedulable pod whose spec or metadata changed is retried (via back-off if that has
    /// not run out); a gated pod whose gates are gone becomes active.
    pub fn update(&mut self, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        let Some(e) = self.entries.get(&key) else {
            self.add(pod, now);
            return;
        };
        let state = e.state;
        let meaningful = meaningful_update(&e.pod, &pod);
        let gated = is_gated(&pod);
        self.detach(&key);
        if let Some(e) = self.entries.get_mut(&key) {
            e.pod = pod;
            if state == PodState::InFlight {
                e.updated_in_flight |= meaningful;
            }
        }
        let next = match state {
            PodState::InFlight => PodState::InFlight,
            _ if gated => PodState::Gated,
            PodState::Gated => PodState::Active,
            PodState::Unschedulable if meaningful => self.active_or_backoff(&key, now),
            other => other,
        };
        if next == PodState::Unschedulable {
            // Keep its place: re-insert under the same timestamp.
            if let Some(since) = self.entries.get(&key).and_then(|e| e.unschedulable_since) {
                self.unschedulable.insert((since, key.clone()));
                if let Some(e) = self.entries.get_mut(&key) {
                    e.state = next;
                }
                return;
            }
        }
        self.attach(&key, next, now);
    }

    /// Removes a pod (deleted, or bound by someone else); returns it if it was queued.
    pub fn delete(&mut self, key: &str) -> Option<Pod> {
        self.detach(key);
        self.entries.remove(key).map(|e| e.pod)
    }

    /// Moves pods whose back-off has ended to active, and pods unschedulable for longer than
    /// the limit to back-off or active. [`pop`](Self::pop) does this first.
    pub fn flush(&mut self, now: Instant) {
        while let Some((until, key)) = self.backoff.first().cloned() {
            if until > now {
                break;
            }
            self.set_state(&key, PodState::Active, now);
        }
        while let Some((since, key)) = self.unschedulable.first().cloned() {
            match since.checked_add(self.config.max_unschedulable) {
                Some(due) if due <= now => {}
                _ => break,
            }
            let next = self.active_or_backoff(&key, now);
            self.set_state(&key, next, now);
        }
    }

    /// The next pod to schedule (its key), now in flight; None when no pod is active.
    /// Read the pod with [`pod`](Self::pod); report the outcome with [`done`](Self::done)
    /// or [`failed`](Self::failed).
    pub fn pop(&mut self, now: Instant) -> Option<String> {
        self.flush(now);
        let order = self.active.pop_first()?;
        self.cycle += 1;
        let e = self.entries.get_mut(&order.key)?;
        e.state = PodState::InFlight;
        e.attempts = e.attempts.saturating_add(1);
        e.popped_cycle = self.cycle;
        e.updated_in_flight = false;
        Some(order.key)
    }

    /// The pod was placed (assumed and bound): it leaves the queue. Returns it.
    pub fn done(&mut self, key: &str) -> Option<Pod> {
        self.delete(key)
    }

    /// The in-flight pod did not fit: it backs off for [`backoff_duration`] of its attempts,
    /// waiting in back-off if a cluster change arrived (or the pod changed) since it was
    /// popped, and as unschedulable otherwise. Returns false if the pod is not in flight.
    ///
    /// [`backoff_duration`]: Self::backoff_duration
    pub fn failed(&mut self, key: &str, now: Instant) -> bool {
        let backoff = match self.entries.get(key) {
            Some(e) if e.state == PodState::InFlight => self.backoff_duration(e.attempts),
            _ => return false,
        };
        let move_request_cycle = self.move_request_cycle;
        let Some(e) = self.entries.get_mut(key) else {
            return false;
        };
        e.timestamp = now;
        // A back-off too long to represent is no back-off (only absurd configs get here).
        e.backoff_until = Some(now.checked_add(backoff).unwrap_or(now));
        let changed = move_request_cycle >= e.popped_cycle || e.updated_in_flight;
        e.updated_in_flight = false;
        let next = if changed {
            self.active_or_backoff(key, now)
        } else {
            PodState::Unschedulable
        };
        self.attach(key, next, now);
        true
    }

    /// A cluster change that may let pods fit: every unschedulable pod moves to back-off if
    /// its back-off has not ended, else to active; pods in flight that fail later go to
    /// back-off too. Returns how many pods moved.
    pub fn move_all_to_active_or_backoff(&mut self, event: ClusterEvent, now: Instant) -> usize {
        self.move_request_cycle = self.cycle;
        let keys: Vec<String> = self.unschedulable.iter().map(|(_, k)| k.clone()).collect();
        for key in &keys {
            let next = self.active_or_backoff(key, now);
            self.set_state(key, next, now);
        }
        tracing::debug!(%event, moved = keys.len(), "moved unschedulable pods");
        keys.len()
    }

    /// When the next timer-driven move is due (a back-off ending or an unschedulable pod's
    /// limit), for the caller to sleep until; None when nothing waits on time.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backoff.first().map(|(until, _)| *until);
        let unsched = self
            .unschedulable
            .first()
            .and_then(|(since, _)| since.checked_add(self.config.max_unschedulable));
        match (backoff, unsched) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The latest object of a queued pod.
    pub fn pod(&self, key: &str) -> Option<&Pod> {
        self.entries.get(key).map(|e| &e.pod)
    }

    /// Where a pod is.
    pub fn state(&self, key: &str) -> Option<PodState> {
        self.entries.get(key).map(|e| e.state)
    }

    /// How many times a pod has been popped.
    pub fn attempts(&self, key: &str) -> Option<u32> {
        self.entries.get(key).map(|e| e.attempts)
    }

    /// When a pod's current back-off ends, if it has failed.
    pub fn backoff_until(&self, key: &str) -> Option<Instant> {
        self.entries.get(key).and_then(|e| e.backoff_until)
    }

    /// Whether a pod is queued (in any state).
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The number of queued pods, in any state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no pod is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of pods in a state.
    pub fn count(&self, state: PodState) -> usize {
        match state {
            PodState::Active => self.active.len(),
            PodState::Backoff => self.backoff.len(),
            PodState::Unschedulable => self.unschedulable.len(),
            PodState::InFlight | PodState::Gated => {
                self.entries.values().filter(|e| e.state == state).count()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"priority": priority, "containers": [{"name": "c"}]}
        }))
        .unwrap()
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let q = SchedulingQueue::new();
        let got: Vec<u64> = (0..7).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, [1, 1, 2, 4, 8, 10, 10]);
        assert_eq!(q.backoff_duration(u32::MAX), s(10));
    }

    #[test]
    fn update_reorders_active_and_keeps_one_entry() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(pod("a", 0), t);
        q.add(pod("b", 0), t + s(1));
        q.update(pod("b", 10), t + s(2));
        q.add(pod("a", 0), t + s(3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.count(PodState::Active), 2);
        assert_eq!(q.pop(t + s(4)).as_deref(), Some("ns/b"));
        assert_eq!(q.pop(t + s(4)).as_deref(), Some("ns/a"));
        assert_eq!(q.pop(t + s(4)), None);
        assert_eq!(q.count(PodState::InFlight), 2);
    }

    #[test]
    fn status_only_update_keeps_unschedulable() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(pod("a", 0), t);
        let key = q.pop(t).unwrap();
        assert!(q.failed(&key, t));
        let mut p = pod("a", 0);
        p.metadata.resource_version = Some("7".into());
        q.update(p, t + s(5));
        assert_eq!(q.state(&key), Some(PodState::Unschedulable));
        assert_eq!(q.count(PodState::Unschedulable), 1);
        let mut p = pod("a", 0);
        p.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        q.update(p, t + s(5));
        assert_eq!(q.state(&key), Some(PodState::Active));
    }

    #[test]
    fn gated_pods_wait_for_their_gates() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        let mut p = pod("g", 0);
        if let Some(spec) = p.spec.as_mut() {
            spec.scheduling_gates = Some(vec![Default::default()]);
        }
        q.add(p, t);
        assert_eq!(q.pop(t), None);
        q.move_all_to_active_or_backoff(ClusterEvent::NodeAdded, t);
        q.flush(t + s(3600));
        assert_eq!(q.state("ns/g"), Some(PodState::Gated));
        q.update(pod("g", 0), t);
        assert_eq!(q.pop(t).as_deref(), Some("ns/g"));
    }

    #[test]
    fn unbounded_unschedulable_wait() {
        let t = Instant::now();
        let mut q = SchedulingQueue::with_config(QueueConfig {
            max_unschedulable: Duration::MAX,
            ..QueueConfig::default()
        });
        q.add(pod("a", 0), t);
        let k = q.pop(t).unwrap();
        q.failed(&k, t);
        assert_eq!(q.next_wakeup(), None);
        assert_eq!(q.pop(t + s(86_400)), None);
        assert_eq!(
            q.move_all_to_active_or_backoff(ClusterEvent::NodeAdded, t + s(2)),
            1
        );
        assert_eq!(q.pop(t + s(2)).as_deref(), Some("ns/a"));
    }

    #[test]
    fn delete_anywhere() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(pod("a", 0), t);
        q.add(pod("b", 0), t);
        let k = q.pop(t).unwrap();
        q.failed(&k, t);
        assert!(q.delete("ns/a").is_some());
        assert!(q.delete("ns/b").is_some());
        assert!(q.delete("ns/b").is_none());
        assert!(q.is_empty());
        assert_eq!(q.next_wakeup(), None);
        assert_eq!(q.pop(t + s(600)), None);
    }
}
