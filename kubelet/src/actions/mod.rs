//! What one sync of a pod must do, from the pod and what the runtime has for it (the
//! kubelet's computePodActions): whether to (re)create the sandbox, which init container to
//! run next, which containers to start, restart or kill, and which wait in CrashLoopBackOff.
//!
//! The rules, after upstream:
//!
//! - A pod being deleted or in a terminal phase starts nothing; whatever still runs is killed.
//! - A new sandbox is needed when there is none, when more than one is ready, when the newest
//!   is not ready, or (unless the pod uses the host network) when it has no IP. Everything is
//!   then killed and started over: the new attempt is the newest sandbox's plus one (0 for the
//!   first), and the first init container (or else every regular container) is started in
//!   it. A pod that will not restart anything — restart policy `Never` once a container has
//!   existed, or every regular container already succeeded under `OnFailure` — gets no new
//!   sandbox.
//! - Init containers run one at a time in spec order; each must exit 0 before the next starts
//!   and regular containers start only once all have. A failed init container is restarted
//!   unless the restart policy is `Never`, in which case the pod has failed. Sidecars (init
//!   containers with restart policy `Always`) count as done once running, are started in
//!   order and are restarted whenever they exit. Init progress is judged from the containers
//!   of the current sandbox only, so a new sandbox runs the init containers again.
//! - A regular container is started if it never ran, and restarted after it exited according
//!   to the restart policy (`Always`; `OnFailure` on a non-zero exit; `Never` not at all).
//!   A running container whose image differs from the spec is killed and started again; a
//!   running container that is not in the spec is killed. When no regular container keeps
//!   running and none is to start, the whole pod is killed.
//! - A restart after an exit in the current sandbox waits for the [`Backoff`] of that
//!   container; while it waits the container is reported in `backoff` with the waiting reason
//!   `CrashLoopBackOff`.
//!
//! Starts carry the attempt number: the newest instance's attempt plus one, or 0.

mod backoff;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container as SpecContainer, Pod};

use crate::runtime::{Container, ContainerState, PodRuntime, Sandbox, SandboxState};

pub use backoff::{
    BACKOFF_RESET, Backoff, BackoffKey, INITIAL_BACKOFF, MAX_BACKOFF, go_duration, ran_for,
    remaining_after,
};

/// Waiting reason of a container in back-off.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
/// Waiting reason of a container not created yet in a pod with init containers.
pub const POD_INITIALIZING: &str = "PodInitializing";
/// Waiting reason of a container not created yet in a pod without init containers.
pub const CONTAINER_CREATING: &str = "ContainerCreating";
/// Kill reason of a running container whose spec (image) changed.
pub const KILL_SPEC_CHANGED: &str = "Container spec changed";
/// Kill reason of a container that is no longer in the pod spec.
pub const KILL_NOT_IN_SPEC: &str = "Container is not in the pod spec";
/// Kill reason of a container in an unknown state, killed before it is started again.
pub const KILL_UNKNOWN_STATE: &str =
    "Container is in \"Unknown\" state, try killing it before restart";

/// What a sync must do for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Kill the sandbox and every container of the pod (done before anything else).
    pub kill_pod: bool,
    /// Create a new sandbox with this attempt number.
    pub create_sandbox: Option<u32>,
    /// The sandbox to start containers in when no new one is created.
    pub sandbox_id: Option<String>,
    /// The init container (or sidecar) to start next.
    pub start_init: Option<String>,
    /// Attempt number for `start_init`.
    pub init_attempt: u32,
    /// Regular containers to start, with their attempt numbers, in spec order.
    pub start: Vec<(String, u32)>,
    /// Containers to kill: runtime id and reason.
    pub kill: Vec<(String, String)>,
    /// Containers that should restart but wait in CrashLoopBackOff, with the time left.
    pub backoff: Vec<(String, Duration)>,
    /// Waiting reason by container name (`CrashLoopBackOff`, `PodInitializing`,
    /// `ContainerCreating`).
    pub waiting_reason: BTreeMap<String, String>,
    /// Waiting message by container name (the back-off message).
    pub waiting_message: BTreeMap<String, String>,
    /// An init container failed under restart policy `Never`: the pod has failed.
    pub pod_failed: bool,
}

impl PodActions {
    /// Whether the sync has nothing to do on the runtime.
    pub fn is_noop(&self) -> bool {
        !self.kill_pod
            && self.create_sandbox.is_none()
            && self.start_init.is_none()
            && self.start.is_empty()
            && self.kill.is_empty()
    }
}

/// A pod's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Always restart (the default).
    Always,
    /// Restart after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy of `pod` (`Always` when unset or unknown).
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }
}

/// Whether an init container is a sidecar (its own restart policy is `Always`).
pub fn is_sidecar(c: &SpecContainer) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The newest instance (highest attempt, then latest creation; the first listed on a tie)
/// of container `name`, optionally only among those of sandbox `sandbox_id`.
pub fn newest_instance<'a>(
    rt: &'a PodRuntime,
    name: &str,
    sandbox_id: Option<&str>,
) -> Option<&'a Container> {
    rt.containers
        .iter()
        .filter(|c| c.name == name && sandbox_id.is_none_or(|s| c.sandbox_id == s))
        .fold(None, |best: Option<&Container>, c| match best {
            Some(b) if (b.attempt, b.created_at) >= (c.attempt, c.created_at) => Some(b),
            _ => Some(c),
        })
}

/// The newest sandbox (highest attempt, then latest creation; the first listed on a tie).
pub fn newest_sandbox(rt: &PodRuntime) -> Option<&Sandbox> {
    rt.sandboxes
        .iter()
        .fold(None, |best: Option<&Sandbox>, s| match best {
            Some(b) if (b.attempt, b.created_at) >= (s.attempt, s.created_at) => Some(b),
            _ => Some(s),
        })
}

/// Whether the runtime image of a container is the image the spec asks for. Docker-style
/// short names are compared in full (`busybox` is `docker.io/library/busybox:latest`); a
/// runtime image that is empty or a bare image id is not taken as a change.
pub fn same_image(spec: &str, running: &str) -> bool {
    if running.is_empty() || running.starts_with("sha256:") || spec == running {
        return true;
    }
    normalize_image(spec) == normalize_image(running)
}

/// The full form of an image reference: registry, repository, and tag (`latest` when
/// neither tag nor digest is given).
pub fn normalize_image(image: &str) -> String {
    let image = image.trim();
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (domain, path) = match name.split_once('/') {
        Some((d, rest)) if d.contains('.') || d.contains(':') || d == "localhost" => (d, rest),
        _ => ("docker.io", name),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let mut out = format!("{domain}/");
    if domain == "docker.io" && !path.contains('/') {
        out.push_str("library/");
    }
    out.push_str(path);
    let last = path.rsplit('/').next().unwrap_or(path);
    if digest.is_none() && !last.contains(':') {
        out.push_str(":latest");
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// What a sync of `pod` must do, given what the runtime has for it (`None`: nothing), the
/// back-off state and the current time.
pub fn compute(pod: &Pod, rt: Option<&PodRuntime>, backoff: &Backoff, now_ns: i64) -> PodActions {
    let empty = PodRuntime::default();
    let cx = Ctx::new(pod, rt.unwrap_or(&empty), backoff, now_ns);
    let mut a = PodActions::default();
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if pod.metadata.deletion_timestamp.is_some() || terminal {
        a.kill_pod = cx.anything_running();
        return a;
    }
    match cx.sandbox_decision() {
        SandboxDecision::Keep(sb) => cx.sync_in_sandbox(sb, &mut a),
        SandboxDecision::Create(attempt) => cx.create_sandbox(attempt, &mut a),
    }
    cx.default_waiting_reasons(&mut a);
    a
}

enum SandboxDecision<'a> {
    Keep(&'a Sandbox),
    Create(u32),
}

/// Outcome of the init container pass.
enum InitOutcome {
    /// Every init container is done (or there is none): regular containers may run.
    Done,
    /// Initialization goes on.
    InProgress,
    /// An init container failed under restart policy `Never`.
    Failed,
}

struct Ctx<'a> {
    pod: &'a Pod,
    rt: &'a PodRuntime,
    backoff: &'a Backoff,
    now_ns: i64,
    uid: &'a str,
    init: &'a [SpecContainer],
    containers: &'a [SpecContainer],
    policy: RestartPolicy,
}

impl<'a> Ctx<'a> {
    fn new(pod: &'a Pod, rt: &'a PodRuntime, backoff: &'a Backoff, now_ns: i64) -> Self {
        let spec = pod.spec.as_ref();
        Self {
            pod,
            rt,
            backoff,
            now_ns,
            uid: pod.metadata.uid.as_deref().unwrap_or(&rt.uid),
            init: spec
                .and_then(|s| s.init_containers.as_deref())
                .unwrap_or_default(),
            containers: spec.map(|s| s.containers.as_slice()).unwrap_or_default(),
            policy: RestartPolicy::of(pod),
        }
    }

    /// Whether a sandbox is ready or a container is not exited: a pod kill has work to do.
    fn anything_running(&self) -> bool {
        self.rt
            .sandboxes
            .iter()
            .any(|s| s.state == SandboxState::Ready)
            || self
                .rt
                .containers
                .iter()
                .any(|c| c.state != ContainerState::Exited)
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn sandbox_decision(&self) -> SandboxDecision<'a> {
        let Some(newest) = newest_sandbox(self.rt) else {
            return SandboxDecision::Create(0);
        };
        let next = SandboxDecision::Create(newest.attempt.saturating_add(1));
        let ready = self
            .rt
            .sandboxes
            .iter()
            .filter(|s| s.state == SandboxState::Ready)
            .count();
        if ready > 1 || newest.state != SandboxState::Ready {
            return next;
        }
        if !self.host_network() && newest.ip.as_deref().is_none_or(str::is_empty) {
            return next;
        }
        SandboxDecision::Keep(newest)
    }

    fn newest(&self, name: &str) -> Option<&'a Container> {
        newest_instance(self.rt, name, None)
    }

    fn attempt(&self, name: &str) -> u32 {
        self.newest(name).map_or(0, |c| c.attempt.saturating_add(1))
    }

    fn pod_display(&self) -> String {
        format!(
            "{}_{}({})",
            self.pod.metadata.name.as_deref().unwrap_or(&self.rt.name),
            self.pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(&self.rt.namespace),
            self.uid
        )
    }

    /// The attempt to start `name` with, or `None` when it waits in back-off (then recorded
    /// in `a`). Back-off applies when the newest instance exited in sandbox `sandbox_id`.
    fn try_start(&self, name: &str, sandbox_id: &str, a: &mut PodActions) -> Option<u32> {
        let attempt = self.attempt(name);
        let Some(last) = self
            .newest(name)
            .filter(|c| c.state == ContainerState::Exited && c.sandbox_id == sandbox_id)
        else {
            return Some(attempt);
        };
        let key = BackoffKey::new(self.uid, name);
        let delay = self.backoff.delay_for_exit(
            &key,
            ran_for(last.started_at, last.finished_at),
            last.finished_at,
        );
        let Some(left) = remaining_after(last.finished_at, delay, self.now_ns) else {
            return Some(attempt);
        };
        a.backoff.push((name.to_string(), left));
        a.waiting_reason
            .insert(name.to_string(), CRASH_LOOP_BACK_OFF.to_string());
        a.waiting_message.insert(
            name.to_string(),
            format!(
                "back-off {} restarting failed container={} pod={}",
                go_duration(delay),
                name,
                self.pod_display()
            ),
        );
        None
    }

    /// Whether the newest instance of `name` exited 0.
    fn succeeded(&self, name: &str) -> bool {
        self.newest(name)
            .is_some_and(|c| c.state == ContainerState::Exited && c.exit_code == 0)
    }

    fn create_sandbox(&self, attempt: u32, a: &mut PodActions) {
        a.kill_pod = self.anything_running();
        if self.policy == RestartPolicy::Never && attempt != 0 && !self.rt.containers.is_empty() {
            // Everything already ran once and nothing restarts: no new sandbox.
            return;
        }
        let to_start: Vec<&SpecContainer> = self
            .containers
            .iter()
            .filter(|c| !(self.policy == RestartPolicy::OnFailure && self.succeeded(&c.name)))
            .collect();
        if to_start.is_empty()
            && self
                .containers
                .iter()
                .any(|c| self.newest(&c.name).is_some())
        {
            // Initialized before and every container is done.
            return;
        }
        a.create_sandbox = Some(attempt);
        // Containers are started in a sandbox that does not exist yet: no back-off applies.
        if let Some(first) = self.init.first() {
            a.start_init = Some(first.name.clone());
            a.init_attempt = self.attempt(&first.name);
            return;
        }
        a.start = to_start
            .iter()
            .map(|c| (c.name.clone(), self.attempt(&c.name)))
            .collect();
    }

    fn sync_in_sandbox(&self, sb: &Sandbox, a: &mut PodActions) {
        a.sandbox_id = Some(sb.id.clone());
        let known: BTreeSet<&str> = self
            .init
            .iter()
            .chain(self.containers)
            .map(|c| c.name.as_str())
            .collect();
        for c in &self.rt.containers {
            if c.state != ContainerState::Exited && !known.contains(c.name.as_str()) {
                a.kill.push((c.id.clone(), KILL_NOT_IN_SPEC.to_string()));
            }
        }

        let mut init_candidates = Vec::new();
        match self.init_pass(sb, &mut init_candidates, a) {
            InitOutcome::Failed => {
                a.pod_failed = true;
                a.kill_pod = self.anything_running();
                return;
            }
            InitOutcome::InProgress => {
                self.pick_init(&init_candidates, sb, a);
                return;
            }
            InitOutcome::Done => {}
        }

        let mut keep = 0usize;
        let mut wanted = 0usize;
        for spec in self.containers {
            let name = spec.name.as_str();
            let newest = self.newest(name);
            if let Some(c) = newest.filter(|c| c.state == ContainerState::Running) {
                if same_image(spec.image.as_deref().unwrap_or_default(), &c.image) {
                    keep += 1;
                } else {
                    a.kill.push((c.id.clone(), KILL_SPEC_CHANGED.to_string()));
                    a.start
                        .push((name.to_string(), c.attempt.saturating_add(1)));
                    wanted += 1;
                }
                continue;
            }
            if !self.should_restart(newest) {
                continue;
            }
            wanted += 1;
            if let Some(c) = newest.filter(|c| c.state == ContainerState::Unknown) {
                a.kill.push((c.id.clone(), KILL_UNKNOWN_STATE.to_string()));
            }
            if let Some(attempt) = self.try_start(name, &sb.id, a) {
                a.start.push((name.to_string(), attempt));
            }
        }
        if keep == 0 && wanted == 0 {
            // Nothing left to run: stop the pod, sidecars included.
            a.kill_pod = self.anything_running();
            return;
        }
        self.pick_init(&init_candidates, sb, a);
    }

    /// Whether a regular container whose newest instance is `newest` (not running) must
    /// be started.
    fn should_restart(&self, newest: Option<&Container>) -> bool {
        let Some(c) = newest else { return true };
        match c.state {
            ContainerState::Running => false,
            ContainerState::Created | ContainerState::Unknown => true,
            ContainerState::Exited => match self.policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => c.exit_code != 0,
                RestartPolicy::Never => false,
            },
        }
    }

    /// Walks the init containers from the last to the first (completed ones may be gone from
    /// the runtime, so the furthest one seen tells the progress), collecting the indices of
    /// those to start and the kills.
    fn init_pass(
        &self,
        sb: &Sandbox,
        to_start: &mut Vec<usize>,
        a: &mut PodActions,
    ) -> InitOutcome {
        if self.init.is_empty() {
            return InitOutcome::Done;
        }
        let in_sandbox = |name: &str| newest_instance(self.rt, name, Some(&sb.id));
        // A regular container that was created means initialization finished earlier.
        let mut initialized = self.containers.iter().any(|c| {
            in_sandbox(&c.name).is_some_and(|c| {
                matches!(c.state, ContainerState::Created | ContainerState::Running)
            })
        });
        let mut reached = initialized;
        let last = self.init.len() - 1;
        let restart_on_failure = self.policy != RestartPolicy::Never;
        for (i, spec) in self.init.iter().enumerate().rev() {
            let sidecar = is_sidecar(spec);
            let Some(st) = in_sandbox(&spec.name) else {
                if reached && sidecar {
                    to_start.push(i);
                }
                continue;
            };
            if reached && !sidecar {
                continue;
            }
            match st.state {
                ContainerState::Created => to_start.push(i),
                ContainerState::Running if sidecar => {
                    if i == last {
                        initialized = true;
                    } else if !reached {
                        to_start.push(i + 1);
                    }
                    if !same_image(spec.image.as_deref().unwrap_or_default(), &st.image) {
                        a.kill.push((st.id.clone(), KILL_SPEC_CHANGED.to_string()));
                        to_start.push(i);
                    }
                }
                // A plain init container still running: wait for it.
                ContainerState::Running => {}
                ContainerState::Exited if sidecar => to_start.push(i),
                ContainerState::Exited => {
                    if init_failed(st) {
                        if !restart_on_failure {
                            return InitOutcome::Failed;
                        }
                        to_start.push(i);
                    } else if i == last {
                        initialized = true;
                    } else {
                        to_start.push(i + 1);
                    }
                }
                ContainerState::Unknown => {
                    if !sidecar && !restart_on_failure {
                        return InitOutcome::Failed;
                    }
                    a.kill.push((st.id.clone(), KILL_UNKNOWN_STATE.to_string()));
                    to_start.push(i);
                }
            }
            reached = true;
        }
        if !reached {
            to_start.push(0);
        }
        to_start.sort_unstable();
        to_start.dedup();
        if initialized {
            InitOutcome::Done
        } else {
            InitOutcome::InProgress
        }
    }

    /// Starts the first of `candidates` (spec order) that is not in back-off; the others
    /// follow in later syncs.
    fn pick_init(&self, candidates: &[usize], sb: &Sandbox, a: &mut PodActions) {
        for &i in candidates {
            let Some(spec) = self.init.get(i) else {
                continue;
            };
            if let Some(attempt) = self.try_start(&spec.name, &sb.id, a) {
                a.start_init = Some(spec.name.clone());
                a.init_attempt = attempt;
                return;
            }
        }
    }

    /// Containers that never ran wait with upstream's default reason.
    fn default_waiting_reasons(&self, a: &mut PodActions) {
        let reason = if self.init.is_empty() {
            CONTAINER_CREATING
        } else {
            POD_INITIALIZING
        };
        for c in self.init.iter().chain(self.containers) {
            if self.newest(&c.name).is_none() {
                a.waiting_reason
                    .entry(c.name.clone())
                    .or_insert_with(|| reason.to_string());
            }
        }
    }
}

/// Whether an exited or unknown init container failed.
fn init_failed(c: &Container) -> bool {
    c.reason == "OOMKilled"
        || c.state == ContainerState::Unknown
        || (c.state == ContainerState::Exited && c.exit_code != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_normalize() {
        assert!(same_image("busybox", "docker.io/library/busybox:latest"));
        assert!(same_image("nginx:1.25", "docker.io/library/nginx:1.25"));
        assert!(same_image("quay.io/a/b", "quay.io/a/b:latest"));
        assert!(same_image(
            "localhost:5000/app",
            "localhost:5000/app:latest"
        ));
        assert!(same_image("busybox", "sha256:0123"));
        assert!(!same_image("busybox:1", "busybox:2"));
        assert!(!same_image("nginx", "docker.io/library/busybox:latest"));
        assert_eq!(
            normalize_image("me/app@sha256:ab"),
            "docker.io/me/app@sha256:ab"
        );
    }
}
