//! The API `PodStatus` the kubelet reports, computed from the pod, the runtime's view of
//! it ([`PodRuntime`]) and the probe results, as upstream's `generateAPIPodStatus` and
//! status manager do:
//!
//! - container statuses per spec container: the newest runtime instance gives the state,
//!   the one before it `lastState`; a container the runtime has no record of keeps what the
//!   pod's previous status said (terminated init containers stay terminated) or waits
//!   (`ContainerCreating`, or `PodInitializing` for regular containers of a pod with init
//!   containers); a sync failure the caller reports (`CrashLoopBackOff`, `ErrImagePull`)
//!   replaces the state of a container that is due to be (re)started;
//! - the phase by upstream's `getPhase` rules, never leaving a terminal phase;
//! - the kubelet-owned conditions (`PodReadyToStartContainers`, `Initialized`, `Ready`,
//!   `ContainersReady`), `PodScheduled`, and every other condition of the pod kept as it
//!   is; a condition's `lastTransitionTime` changes only when its status does;
//! - IPs, start time and QoS class.
//!
//! Times are whole seconds, as the API stores them, so that a status read back from the
//! API compares equal to the one computed from it ([`status_changed`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container as SpecContainer, ContainerState as ApiState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition,
    PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kubeutil::quantity;
use serde_json::Value;

use crate::runtime::{Container, ContainerState, PodRuntime, SandboxState};

/// The scheme of container ids in the API (`containerd://<id>`).
pub const RUNTIME_SCHEME: &str = "containerd";

/// Pod phases.
pub mod phase {
    /// Accepted, not all containers running yet (or init containers still running).
    pub const PENDING: &str = "Pending";
    /// Bound, containers created, at least one running or restarting.
    pub const RUNNING: &str = "Running";
    /// Every container terminated successfully and will not be restarted.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Every container terminated, at least one in failure, none restarted.
    pub const FAILED: &str = "Failed";
}

/// Pod condition types.
pub mod condition {
    /// The sandbox is running with its network.
    pub const POD_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
    /// Every init container completed (sidecars started).
    pub const INITIALIZED: &str = "Initialized";
    /// The pod serves: containers ready and readiness gates true.
    pub const READY: &str = "Ready";
    /// Every container is ready.
    pub const CONTAINERS_READY: &str = "ContainersReady";
    /// Bound to a node.
    pub const POD_SCHEDULED: &str = "PodScheduled";
    /// Types the kubelet computes; others are kept from the pod as they are.
    pub const KUBELET_OWNED: [&str; 4] = [
        POD_READY_TO_START_CONTAINERS,
        INITIALIZED,
        READY,
        CONTAINERS_READY,
    ];
}

/// Reasons the status uses.
pub mod reason {
    /// Waiting reason of a container not created yet.
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    /// Waiting reason of a regular container of a pod with init containers, not created yet.
    pub const POD_INITIALIZING: &str = "PodInitializing";
    /// Terminated reason of a container that was running and vanished from the runtime.
    pub const CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
    /// Ready/ContainersReady: some container is not ready.
    pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
    /// Initialized: some init container has not completed.
    pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
    /// Ready: some readiness gate condition is not True.
    pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";
    /// Conditions of a Succeeded pod.
    pub const POD_COMPLETED: &str = "PodCompleted";
    /// Conditions of a Failed pod.
    pub const POD_FAILED: &str = "PodFailed";
}

/// QoS classes.
pub mod qos {
    /// Every container has equal cpu and memory requests and limits.
    pub const GUARANTEED: &str = "Guaranteed";
    /// Some request or limit, not Guaranteed.
    pub const BURSTABLE: &str = "Burstable";
    /// No cpu or memory request or limit at all.
    pub const BEST_EFFORT: &str = "BestEffort";
}

const STATUS_UNKNOWN_MESSAGE: &str = concat!(
    "The container could not be located when the pod was deleted.  ",
    "The container used to be Running"
);

/// The status of `pod` from its runtime state.
///
/// `ready` and `started` hold readiness and startup probe results by container name; a
/// container without an entry has no such probe, so it is started (and ready) whenever it
/// runs. A container with a probe that has not answered yet must be given `false`.
/// `waiting` holds the reason and message of the last failed attempt to start a container
/// (`CrashLoopBackOff`, `ErrImagePull`, `CreateContainerConfigError`, `ContainerCreating`);
/// it is shown for containers that are not running and are due to be (re)started.
pub fn pod_status(
    pod: &Pod,
    rt: Option<&PodRuntime>,
    ready: &BTreeMap<String, bool>,
    started: &BTreeMap<String, bool>,
    waiting: &BTreeMap<String, (String, String)>,
    host_ip: &str,
    now: Timestamp,
) -> PodStatus {
    let empty_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty_spec);
    let old = pod.status.clone().unwrap_or_default();
    let now = Time(whole_seconds(now));
    let deleted = pod.metadata.deletion_timestamp.is_some();

    let mut runtime_containers: Vec<&Container> = rt
        .map(|r| r.containers.iter().collect())
        .unwrap_or_default();
    runtime_containers.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.attempt.cmp(&a.attempt))
    });

    let ctx = StatusContext {
        spec,
        deleted,
        ready,
        started,
        waiting,
        runtime: &runtime_containers,
    };
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let has_init = !init_specs.is_empty();
    let init_statuses: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| {
            let old_status = find_status(old.init_container_statuses.as_deref(), &c.name);
            ctx.container_status(c, Kind::init(c), has_init, old_status)
        })
        .collect();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            let old_status = find_status(old.container_statuses.as_deref(), &c.name);
            ctx.container_status(c, Kind::Regular, has_init, old_status)
        })
        .collect();

    let mut phase = pod_phase(spec, &init_statuses, &statuses, deleted).to_string();
    let old_phase = old.phase.clone().unwrap_or_default();
    if is_terminal(&old_phase) && !is_terminal(&phase) {
        phase = old_phase.clone();
    }

    let mut s = old.clone();
    if phase != old_phase {
        // Reason and message belong to the phase they were given with.
        s.reason = None;
        s.message = None;
    }

    // Sandbox, IPs.
    let mut sandboxes: Vec<_> = rt.map(|r| r.sandboxes.iter().collect()).unwrap_or_default();
    sandboxes.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.attempt.cmp(&a.attempt))
    });
    let host_network = spec.host_network.unwrap_or(false);
    let newest_ready = sandboxes
        .first()
        .filter(|s| s.state == SandboxState::Ready)
        .copied();
    let ready_sandboxes = sandboxes
        .iter()
        .filter(|s| s.state == SandboxState::Ready)
        .count();
    let sandbox_ip = newest_ready
        .and_then(|s| s.ip.clone())
        .filter(|ip| !ip.is_empty());
    let ready_to_start =
        ready_sandboxes == 1 && newest_ready.is_some() && (host_network || sandbox_ip.is_some());

    let pod_ip = if host_network && !host_ip.is_empty() {
        Some(host_ip.to_string())
    } else {
        sandbox_ip
    };
    // Without a running sandbox the pod keeps the address it had: it is shown for
    // terminated pods, and a restarting sandbox gets a new one soon.
    if let Some(ip) = pod_ip {
        s.pod_ip = Some(ip.clone());
        s.pod_ips = Some(vec![PodIP { ip }]);
    }
    if !host_ip.is_empty() {
        s.host_ip = Some(host_ip.to_string());
        s.host_ips = Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]);
    }
    if s.start_time.is_none() {
        s.start_time = Some(now.clone());
    }
    if s.qos_class.as_deref().is_none_or(str::is_empty) {
        s.qos_class = Some(qos_class(spec).to_string());
    }

    // Conditions.
    let old_conditions = old.conditions.as_deref().unwrap_or_default();
    let generated = [
        PodCondition {
            type_: condition::POD_READY_TO_START_CONTAINERS.into(),
            status: true_false(ready_to_start),
            ..Default::default()
        },
        initialized_condition(spec, &init_statuses, &statuses, &phase),
        ready_condition(spec, old_conditions, &init_statuses, &statuses, &phase),
        containers_ready_condition(spec, &init_statuses, &statuses, &phase),
    ];
    let mut conditions: Vec<PodCondition> = generated
        .into_iter()
        .map(|c| with_transition_time(c, old_conditions, &now))
        .collect();
    match old_conditions
        .iter()
        .find(|c| c.type_ == condition::POD_SCHEDULED && c.status == "True")
    {
        Some(c) => conditions.push(c.clone()),
        None => conditions.push(with_transition_time(
            PodCondition {
                type_: condition::POD_SCHEDULED.into(),
                status: "True".into(),
                ..Default::default()
            },
            old_conditions,
            &now,
        )),
    }
    conditions.extend(
        old_conditions
            .iter()
            .filter(|c| {
                c.type_ != condition::POD_SCHEDULED
                    && !condition::KUBELET_OWNED.contains(&c.type_.as_str())
            })
            .cloned(),
    );

    s.phase = Some(phase);
    s.conditions = Some(conditions);
    s.init_container_statuses = has_init.then_some(init_statuses);
    s.container_statuses = Some(statuses);
    s
}

/// Whether `new` differs from `old` in anything but the timestamps of conditions whose
/// status, reason and message are unchanged. Empty and absent fields compare equal, and
/// times compare to the second, as the API stores them.
pub fn status_changed(old: &PodStatus, new: &PodStatus) -> bool {
    condition_key(old) != condition_key(new) || comparable(old) != comparable(new)
}

/// The QoS class of a pod by upstream's rules: BestEffort without any cpu or memory
/// request or limit; Guaranteed when every container (init containers included) limits
/// both cpu and memory and the summed requests equal the summed limits; else Burstable.
/// A request left out where a limit is given counts as equal to the limit, as the API's
/// defaulting makes it.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    const RESOURCES: [&str; 2] = ["cpu", "memory"];
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        let res = c.resources.as_ref();
        let mut limited = 0;
        for name in RESOURCES {
            let limit = milli(res.and_then(|r| r.limits.as_ref()), name);
            let request = milli(res.and_then(|r| r.requests.as_ref()), name).or(limit);
            if let Some(r) = request.filter(|r| *r > 0) {
                *requests.entry(name).or_default() += r;
            }
            if let Some(l) = limit.filter(|l| *l > 0) {
                *limits.entry(name).or_default() += l;
                limited += 1;
            }
        }
        if limited < RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        qos::BEST_EFFORT
    } else if guaranteed && requests == limits {
        qos::GUARANTEED
    } else {
        qos::BURSTABLE
    }
}

/// The phase of a pod from its container statuses, by upstream's `getPhase`: Pending
/// while a (regular) init container has not succeeded, a sidecar has not started, or a
/// container waits without ever having run; Failed when init failed under restartPolicy
/// Never; Running while a container runs or is being restarted; Succeeded or Failed when
/// every container stopped for good (by restartPolicy, or because the pod is `terminal`,
/// i.e. being deleted, so nothing will restart).
pub fn pod_phase(
    spec: &PodSpec,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let mut pending_init = 0;
    let mut pending_sidecars = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);

    for c in init_specs {
        let Some(st) = find_status(Some(init), &c.name) else {
            if is_sidecar(c) {
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        let state = st.state.clone().unwrap_or_default();
        let last_terminated = st.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        if is_sidecar(c) {
            if state.running.is_some() {
                if st.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.terminated.is_some() {
                // A stopped sidecar does not hold anything up.
            } else if state.waiting.is_some() {
                if last_terminated.is_none() {
                    pending_sidecars += 1;
                }
            } else {
                pending_sidecars += 1;
                unknown += 1;
            }
        } else if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last_terminated {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }

    for c in &spec.containers {
        let Some(st) = find_status(Some(containers), &c.name) else {
            unknown += 1;
            continue;
        };
        let state = st.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if st
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_init > 0 && restart_policy == "Never" {
        return phase::FAILED;
    }
    if pending_init > 0
        || (pending_sidecars > 0 && !any_regular_started(spec, containers))
        || waiting > 0
    {
        return phase::PENDING;
    }
    if running > 0 && unknown == 0 {
        return phase::RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded {
                phase::SUCCEEDED
            } else {
                phase::FAILED
            };
        }
        return match restart_policy {
            "Always" => phase::RUNNING,
            _ if stopped == succeeded => phase::SUCCEEDED,
            "Never" => phase::FAILED,
            // OnFailure: the failed ones are being restarted.
            _ => phase::RUNNING,
        };
    }
    phase::PENDING
}

/// Whether an init container is a sidecar (restartable: `restartPolicy: Always`).
pub fn is_sidecar(c: &SpecContainer) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The API container id of a runtime container (`containerd://<id>`).
pub fn container_id(id: &str) -> String {
    format!("{RUNTIME_SCHEME}://{id}")
}

/// Whether a phase is terminal (Succeeded or Failed).
pub fn is_terminal(phase: &str) -> bool {
    phase == phase::SUCCEEDED || phase == phase::FAILED
}

// ---------------------------------------------------------------------------------------
// Container statuses

/// What kind of spec container a status is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Init container run to completion.
    Init,
    /// Restartable init container.
    Sidecar,
    /// Regular container.
    Regular,
}

impl Kind {
    fn init(c: &SpecContainer) -> Kind {
        if is_sidecar(c) {
            Kind::Sidecar
        } else {
            Kind::Init
        }
    }
}

struct StatusContext<'a> {
    spec: &'a PodSpec,
    deleted: bool,
    ready: &'a BTreeMap<String, bool>,
    started: &'a BTreeMap<String, bool>,
    waiting: &'a BTreeMap<String, (String, String)>,
    /// Every runtime container of the pod, newest first.
    runtime: &'a [&'a Container],
}

impl StatusContext<'_> {
    fn container_status(
        &self,
        c: &SpecContainer,
        kind: Kind,
        has_init: bool,
        old: Option<&ContainerStatus>,
    ) -> ContainerStatus {
        let records: Vec<&Container> = self
            .runtime
            .iter()
            .filter(|r| r.name == c.name)
            .copied()
            .collect();
        let default_reason = if kind == Kind::Regular && has_init {
            reason::POD_INITIALIZING
        } else {
            reason::CONTAINER_CREATING
        };
        let mut st = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state: Some(waiting_state(default_reason, "")),
            started: Some(false),
            ..Default::default()
        };

        match records.first() {
            None => {
                if let Some(old) = old {
                    self.carry_old(&mut st, old);
                }
            }
            Some(newest) => {
                let id = container_id(&newest.id);
                st.container_id = Some(id.clone());
                st.image_id = newest.image_ref.clone();
                st.restart_count = i32::try_from(newest.attempt).unwrap_or(i32::MAX);
                st.state = Some(api_state(newest));
                st.last_state = match records.get(1) {
                    Some(previous) => Some(api_state(previous)),
                    None => old.and_then(|o| previous_termination(o, &id)),
                };
            }
        }

        // A failed (re)start shows instead of the state of a container due to start.
        if let Some((why, msg)) = self.waiting.get(&c.name)
            && self.due_to_start(kind, records.first().copied(), &st)
        {
            if st.state.as_ref().is_some_and(|s| s.terminated.is_some()) {
                st.last_state = st.state.take();
            }
            st.state = Some(waiting_state(why, msg));
        }

        let running = st.state.as_ref().is_some_and(|s| s.running.is_some());
        let started = running && self.started.get(&c.name).copied().unwrap_or(true);
        st.started = Some(started);
        st.ready = match kind {
            Kind::Init => st
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0),
            Kind::Sidecar | Kind::Regular => {
                started && self.ready.get(&c.name).copied().unwrap_or(true)
            }
        };
        st
    }

    /// Fills the status of a container the runtime has no record of from its previous
    /// status: a terminated one stays (the runtime removed a finished container), else the
    /// restart count and last termination carry over, and a container that was running
    /// has stopped with an unknown exit.
    fn carry_old(&self, st: &mut ContainerStatus, old: &ContainerStatus) {
        if terminated(old.state.as_ref()) {
            *st = old.clone();
            return;
        }
        st.restart_count = old.restart_count;
        st.last_state = old.last_state.clone();
        let was_running = old.state.as_ref().is_some_and(|s| s.running.is_some());
        if was_running && !terminated(st.last_state.as_ref()) {
            st.last_state = Some(ApiState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some(reason::CONTAINER_STATUS_UNKNOWN.into()),
                    message: Some(STATUS_UNKNOWN_MESSAGE.into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
            if !self.deleted {
                st.restart_count += 1;
            }
        }
    }

    /// Whether the container is to be (re)started by the next sync (upstream's
    /// `ShouldContainerBeRestarted`, with completed init containers never rerun).
    fn due_to_start(&self, kind: Kind, newest: Option<&Container>, st: &ContainerStatus) -> bool {
        if self.deleted {
            return false;
        }
        let terminated = st.state.as_ref().and_then(|s| s.terminated.as_ref());
        let exit_code = match newest {
            Some(n) => match n.state {
                ContainerState::Running => return false,
                ContainerState::Created | ContainerState::Unknown => return true,
                ContainerState::Exited => n.exit_code,
            },
            None => match terminated {
                Some(t) => t.exit_code,
                None => return true,
            },
        };
        let policy = match kind {
            Kind::Sidecar => "Always",
            Kind::Init if exit_code == 0 => return false,
            _ => self.spec.restart_policy.as_deref().unwrap_or("Always"),
        };
        match policy {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ => true,
        }
    }
}

/// The last termination known from the previous status of a container whose current
/// instance is `current_id`, when the runtime no longer has the instance before it.
fn previous_termination(old: &ContainerStatus, current_id: &str) -> Option<ApiState> {
    if old.container_id.as_deref() == Some(current_id) {
        return old.last_state.clone();
    }
    let candidate = if old.state.as_ref().is_some_and(|s| s.terminated.is_some()) {
        old.state.as_ref()
    } else {
        old.last_state.as_ref()
    }?;
    let t = candidate.terminated.as_ref()?;
    (t.container_id.as_deref() != Some(current_id)).then(|| candidate.clone())
}

fn api_state(c: &Container) -> ApiState {
    match c.state {
        ContainerState::Running => ApiState {
            running: Some(ContainerStateRunning {
                started_at: time_from_nanos(c.started_at),
            }),
            ..Default::default()
        },
        ContainerState::Exited => ApiState {
            terminated: Some(ContainerStateTerminated {
                exit_code: c.exit_code,
                reason: non_empty(&c.reason),
                message: non_empty(&c.message),
                started_at: time_from_nanos(c.started_at),
                finished_at: time_from_nanos(c.finished_at),
                container_id: Some(container_id(&c.id)),
                signal: None,
            }),
            ..Default::default()
        },
        // Created but not started, or unknown to the runtime: waiting to run.
        ContainerState::Created | ContainerState::Unknown => ApiState {
            waiting: Some(ContainerStateWaiting::default()),
            ..Default::default()
        },
    }
}

fn terminated(state: Option<&ApiState>) -> bool {
    state.is_some_and(|s| s.terminated.is_some())
}

fn waiting_state(reason: &str, message: &str) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: non_empty(reason),
            message: non_empty(message),
        }),
        ..Default::default()
    }
}

fn find_status<'a>(list: Option<&'a [ContainerStatus]>, name: &str) -> Option<&'a ContainerStatus> {
    list.unwrap_or_default().iter().find(|s| s.name == name)
}

/// Whether a regular container has run (is running, has terminated, or has terminated
/// before and waits to restart).
fn any_regular_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find_status(Some(statuses), &c.name).is_some_and(|st| {
            let state = st.state.as_ref();
            state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                || st
                    .last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
        })
    })
}

// ---------------------------------------------------------------------------------------
// Conditions

fn initialized_condition(
    spec: &PodSpec,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut cond = PodCondition {
        type_: condition::INITIALIZED.into(),
        status: "True".into(),
        ..Default::default()
    };
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in init_specs {
        match find_status(Some(init), &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(st) if is_sidecar(c) => {
                if st.started != Some(true) {
                    incomplete.push(c.name.as_str());
                }
            }
            Some(st) => {
                if !st.ready {
                    incomplete.push(c.name.as_str());
                }
            }
        }
    }
    if phase == phase::SUCCEEDED && unknown.is_empty() {
        cond.reason = Some(reason::POD_COMPLETED.into());
        return cond;
    }
    // Once a regular container ran, the pod was initialized (sidecars may restart).
    if any_regular_started(spec, containers) {
        return cond;
    }
    let message = unready_message(&[("unknown", &unknown), ("incomplete", &incomplete)]);
    if !message.is_empty() {
        cond.status = "False".into();
        cond.reason = Some(reason::CONTAINERS_NOT_INITIALIZED.into());
        cond.message = Some(message);
    }
    cond
}

fn containers_ready_condition(
    spec: &PodSpec,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut cond = PodCondition {
        type_: condition::CONTAINERS_READY.into(),
        status: "True".into(),
        ..Default::default()
    };
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
        .map(|c| (c, init));
    let regular = spec.containers.iter().map(|c| (c, containers));
    for (c, list) in sidecars.chain(regular) {
        match find_status(Some(list), &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(st) if !st.ready => unready.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if (phase == phase::SUCCEEDED && unknown.is_empty()) || phase == phase::FAILED {
        cond.status = "False".into();
        cond.reason = Some(terminal_reason(phase).into());
        return cond;
    }
    let message = unready_message(&[("unknown", &unknown), ("unready", &unready)]);
    if !message.is_empty() {
        cond.status = "False".into();
        cond.reason = Some(reason::CONTAINERS_NOT_READY.into());
        cond.message = Some(message);
    }
    cond
}

fn ready_condition(
    spec: &PodSpec,
    old_conditions: &[PodCondition],
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let containers_ready = containers_ready_condition(spec, init, containers, phase);
    let mut cond = PodCondition {
        type_: condition::READY.into(),
        ..containers_ready
    };
    if cond.status != "True" {
        return cond;
    }
    let mut unready = Vec::new();
    for gate in spec.readiness_gates.iter().flatten() {
        let t = &gate.condition_type;
        match old_conditions.iter().find(|c| &c.type_ == t) {
            None => unready.push(format!(
                "corresponding condition of pod readiness gate {} does not exist.",
                go_quote(t)
            )),
            Some(c) if c.status != "True" => unready.push(format!(
                "the status of pod readiness gate {} is not \"True\", but {}",
                go_quote(t),
                c.status
            )),
            Some(_) => {}
        }
    }
    if !unready.is_empty() {
        cond.status = "False".into();
        cond.reason = Some(reason::READINESS_GATES_NOT_READY.into());
        cond.message = Some(unready.join(", "));
    }
    cond
}

fn terminal_reason(phase: &str) -> &'static str {
    if phase == phase::FAILED {
        reason::POD_FAILED
    } else {
        reason::POD_COMPLETED
    }
}

/// `containers with unknown status: [a b], containers with unready status: [c]`.
fn unready_message(groups: &[(&str, &Vec<&str>)]) -> String {
    groups
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("containers with {what} status: [{}]", names.join(" ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps the transition time of the pod's condition of the same type and status, else now.
fn with_transition_time(mut c: PodCondition, old: &[PodCondition], now: &Time) -> PodCondition {
    c.last_transition_time = old
        .iter()
        .find(|o| o.type_ == c.type_ && o.status == c.status)
        .and_then(|o| o.last_transition_time.clone())
        .or_else(|| Some(now.clone()));
    c
}

fn true_false(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// A string quoted as Go's `%q` does for printable text.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Comparison and helpers

/// Conditions by type: status, reason and message (timestamps left out).
fn condition_key(s: &PodStatus) -> BTreeMap<String, (String, String, String)> {
    s.conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.clone(),
                (
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// The status without conditions as JSON (times at whole seconds), empty values dropped.
fn comparable(s: &PodStatus) -> Value {
    let mut s = s.clone();
    s.conditions = None;
    let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
    prune(&mut v);
    v
}

/// Drops nulls, empty strings, empty lists and empty objects from objects, recursively.
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => {
            for x in a.iter_mut() {
                prune(x);
            }
            !a.is_empty()
        }
        Value::Object(o) => {
            let drop: BTreeSet<String> = o
                .iter_mut()
                .filter_map(|(k, x)| (!prune(x)).then(|| k.clone()))
                .collect();
            o.retain(|k, _| !drop.contains(k));
            !o.is_empty()
        }
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// A resource of a resource list in milli-units, None when absent or not a quantity.
fn milli(list: Option<&BTreeMap<String, Quantity>>, name: &str) -> Option<i128> {
    list.and_then(|m| m.get(name))
        .and_then(|q| quantity::quantity_milli(&q.0))
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// A runtime time (nanoseconds since the epoch, 0 for never) as an API time.
fn time_from_nanos(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    Timestamp::from_second(ns.div_euclid(1_000_000_000))
        .ok()
        .map(Time)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
