//! Container probes: startup, liveness and readiness, run by one worker task per running
//! container instance and probe kind, as the kubelet's prober does.
//!
//! The kubelet calls [`ProbeManager::sync_pod`] after every sync of a pod with the
//! containers that run now. For each running instance (a runtime container id) of a
//! container that has probes, the manager starts one worker per probe kind; workers of
//! instances that no longer run are stopped, and a new instance of the same container starts
//! over with fresh results.
//!
//! A worker waits `initialDelaySeconds` from the container's start, then probes every
//! `periodSeconds`, each probe bounded by `timeoutSeconds`. A result only counts once it
//! repeats `successThreshold` (successes) or `failureThreshold` (failures) times in a row;
//! `successThreshold` is always 1 for liveness and startup probes. Probes that could not be
//! run at all (the runtime did not answer an exec) are discarded, not counted.
//!
//! - **Startup.** Until the startup probe succeeds, the liveness and readiness probes of
//!   the instance do not run and the container is not ready. After the first success the
//!   startup probe stops; after `failureThreshold` failures the container is to be
//!   restarted, as for a liveness failure.
//! - **Liveness.** After `failureThreshold` failures the container is to be restarted: the
//!   request is queued for [`ProbeManager::take_restarts`] and the worker stops probing
//!   that instance (the next instance gets new workers).
//! - **Readiness.** False until the probe succeeds, then follows the thresholds
//!   ([`ProbeManager::ready`]).
//!
//! While the pod is being deleted only readiness probes run.
//!
//! `on_change(pod uid)` is called (without any lock held) whenever a readiness or startup
//! result flips or a restart is requested, so that the kubelet syncs the pod again.
//!
//! Handlers ([`handlers`]): `exec` runs through CRI `ExecSync` (exit code 0 is success),
//! `httpGet` sends one HTTP/1.1 GET (status 200 to 399 is success; redirects are not
//! followed; HTTPS is reported as unsupported), `tcpSocket` opens a connection, and `grpc`
//! calls the standard `grpc.health.v1.Health/Check` over cleartext HTTP/2.

pub mod handlers;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use handlers::{Handler, Outcome};

/// Callback told the uid of a pod whose probe results changed.
pub type OnChange = Arc<dyn Fn(&str) + Send + Sync>;

/// The kind of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    /// `startupProbe`: gates the other two until it succeeds once.
    Startup,
    /// `livenessProbe`: failures restart the container.
    Liveness,
    /// `readinessProbe`: decides whether the container is ready.
    Readiness,
}

impl ProbeKind {
    /// All kinds, in the order workers are started.
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// The name used in messages: `Startup`, `Liveness` or `Readiness`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The probe of this kind in container `c`, if any.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The timing and thresholds of a probe, with the API defaults filled in and nonsensical
/// values raised to their minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// `initialDelaySeconds` (default 0), counted from the container's start.
    pub initial_delay: Duration,
    /// `periodSeconds` (default 10, at least 1).
    pub period: Duration,
    /// `timeoutSeconds` (default 1, at least 1).
    pub timeout: Duration,
    /// `successThreshold` (default 1, at least 1; always 1 for liveness and startup).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3, at least 1).
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// The settings of `probe` used as a probe of kind `kind`.
    pub fn new(kind: ProbeKind, probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(min)).unwrap_or(0))
        };
        let count =
            |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        let success_threshold = match kind {
            ProbeKind::Readiness => count(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        ProbeSettings {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold,
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }

    /// How long to wait before the first probe of a container started at `started_at_ns`
    /// (nanoseconds since the epoch; 0 or less: unknown, taken as `now`).
    pub fn first_probe_in(&self, started_at_ns: i64, now: SystemTime) -> Duration {
        if started_at_ns <= 0 {
            return self.initial_delay;
        }
        let started = UNIX_EPOCH + Duration::from_nanos(started_at_ns.unsigned_abs());
        let elapsed = now.duration_since(started).unwrap_or(Duration::ZERO);
        self.initial_delay.saturating_sub(elapsed)
    }
}

/// Consecutive results of one worker, turned into a decided result once a threshold is met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultRun {
    last: Option<bool>,
    run: u32,
}

impl ResultRun {
    /// Records one probe result (`true`: success); returns the result once it has been seen
    /// `successThreshold` or `failureThreshold` times in a row (and on every later repeat).
    pub fn observe(&mut self, success: bool, settings: &ProbeSettings) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let needed = if success {
            settings.success_threshold
        } else {
            settings.failure_threshold
        };
        (self.run >= needed).then_some(success)
    }
}

/// The probe manager of one kubelet. See the module documentation.
pub struct ProbeManager {
    shared: Arc<Shared>,
}

struct Shared {
    cri: cri::Client,
    on_change: OnChange,
    pods: Mutex<HashMap<String, PodProbes>>,
}

/// Probe state of one pod.
#[derive(Debug, Default)]
struct PodProbes {
    pod_ip: Option<String>,
    /// Containers of the spec that have probes, with the kinds they have.
    probed: BTreeMap<String, BTreeSet<ProbeKind>>,
    /// The running instance of each probed container, by container name.
    current: BTreeMap<String, String>,
    /// Running instances with workers, by container id.
    instances: HashMap<String, Instance>,
    /// Restart requests not taken yet: container name, container id, message.
    restarts: Vec<(String, String, String)>,
}

/// Results and workers of one running container instance.
#[derive(Debug)]
struct Instance {
    /// Whether the startup probe succeeded (true from the start without a startup probe).
    started: watch::Sender<bool>,
    /// The readiness result (false until the readiness probe succeeds).
    ready: bool,
    workers: Vec<(ProbeKind, JoinHandle<()>)>,
}

impl Instance {
    fn stop(&self) {
        for (_, w) in &self.workers {
            w.abort();
        }
    }

    /// Stops the liveness and startup workers (of a pod being deleted).
    fn stop_restarting_probes(&self) {
        for (kind, w) in &self.workers {
            if *kind != ProbeKind::Readiness {
                w.abort();
            }
        }
    }
}

impl fmt::Debug for ProbeManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeManager")
            .field("shared", &self.shared)
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("pods", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Drop for ProbeManager {
    fn drop(&mut self) {
        for pod in self.shared.lock().values() {
            for inst in pod.instances.values() {
                inst.stop();
            }
        }
    }
}

/// Containers of `pod` that may have probes: regular containers and sidecars (init
/// containers with `restartPolicy: Always`).
fn probe_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let regular = spec.into_iter().flat_map(|s| s.containers.iter());
    let sidecars = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    regular.chain(sidecars)
}

impl ProbeManager {
    /// A manager probing through `cri`, telling `on_change` the uid of each pod whose
    /// readiness or startup results flip or whose containers are to be restarted.
    pub fn new(cri: cri::Client, on_change: OnChange) -> Arc<Self> {
        Arc::new(ProbeManager {
            shared: Arc::new(Shared {
                cri,
                on_change,
                pods: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Brings the workers of `pod` in line with its running containers: `running` lists
    /// (container name, container id, start time in nanoseconds since the epoch) of the
    /// instances that run now, `pod_ip` is the pod's IP (the default host of HTTP and TCP
    /// probes, the host of gRPC probes). Starts workers for new instances of containers with
    /// probes and stops those of instances not listed. Once the pod is being deleted
    /// (`deletionTimestamp` set) its liveness and startup probes stop and pending restarts are
    /// dropped, so that a container shutting down is not restarted; readiness goes on. Must
    /// be called within a tokio runtime.
    pub fn sync_pod(&self, pod: &Pod, running: &[(String, String, i64)], pod_ip: Option<&str>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let containers: BTreeMap<&str, &Container> = probe_containers(pod)
            .filter(|c| ProbeKind::ALL.iter().any(|k| k.of(c).is_some()))
            .map(|c| (c.name.as_str(), c))
            .collect();
        let mut pods = self.shared.lock();
        if containers.is_empty() {
            if let Some(old) = pods.remove(&uid) {
                old.instances.values().for_each(Instance::stop);
            }
            return;
        }
        let p = pods.entry(uid.clone()).or_default();
        p.pod_ip = pod_ip.filter(|ip| !ip.is_empty()).map(str::to_string);
        p.probed = containers
            .iter()
            .map(|(name, c)| {
                let kinds = ProbeKind::ALL.into_iter().filter(|k| k.of(c).is_some());
                (name.to_string(), kinds.collect())
            })
            .collect();

        let live: HashSet<&str> = running
            .iter()
            .filter(|(name, _, _)| containers.contains_key(name.as_str()))
            .map(|(_, id, _)| id.as_str())
            .collect();
        p.instances.retain(|id, inst| {
            let keep = live.contains(id.as_str());
            if !keep {
                inst.stop();
            }
            keep
        });
        p.restarts.retain(|(_, id, _)| live.contains(id.as_str()));
        if terminating {
            p.instances
                .values()
                .for_each(Instance::stop_restarting_probes);
            p.restarts.clear();
        }
        p.current.clear();

        for (name, id, started_at) in running {
            let Some(c) = containers.get(name.as_str()) else {
                continue;
            };
            p.current.insert(name.clone(), id.clone());
            if p.instances.contains_key(id) {
                continue;
            }
            let (started, _) = watch::channel(c.startup_probe.is_none());
            let mut workers = Vec::new();
            for kind in ProbeKind::ALL {
                let Some(probe) = kind.of(c) else {
                    continue;
                };
                if terminating && kind != ProbeKind::Readiness {
                    continue;
                }
                let worker = Worker {
                    shared: Arc::clone(&self.shared),
                    uid: uid.clone(),
                    name: name.clone(),
                    id: id.clone(),
                    kind,
                    settings: ProbeSettings::new(kind, probe),
                    handler: Handler::new(probe, c),
                    started_at_ns: *started_at,
                    started: started.subscribe(),
                };
                tracing::debug!(pod = %uid, container = %name, id = %id, probe = %kind, "starting probe worker");
                workers.push((kind, tokio::spawn(worker.run())));
            }
            let inst = Instance {
                started,
                ready: false,
                workers,
            };
            p.instances.insert(id.clone(), inst);
        }
    }

    /// Stops every worker of pod `uid` and forgets its results.
    pub fn remove_pod(&self, uid: &str) {
        if let Some(p) = self.shared.lock().remove(uid) {
            p.instances.values().for_each(Instance::stop);
        }
    }

    /// Removes every pod whose uid is not in `keep`, as [`ProbeManager::remove_pod`].
    pub fn retain_pods(&self, keep: &BTreeSet<String>) {
        self.shared.lock().retain(|uid, p| {
            let k = keep.contains(uid);
            if !k {
                p.instances.values().for_each(Instance::stop);
            }
            k
        });
    }

    /// Readiness of the containers of pod `uid` that have a readiness probe, by container
    /// name: true only when the current instance runs and its probe succeeded (and did not
    /// fail since, per the thresholds).
    pub fn ready(&self, uid: &str) -> BTreeMap<String, bool> {
        self.results(uid, ProbeKind::Readiness, |inst| inst.ready)
    }

    /// Whether the startup probe of the current instance succeeded, for the containers of
    /// pod `uid` that have a startup probe, by container name.
    pub fn started(&self, uid: &str) -> BTreeMap<String, bool> {
        self.results(uid, ProbeKind::Startup, |inst| *inst.started.borrow())
    }

    /// Takes the restart requests of pod `uid`: (container name, container id, message such
    /// as `Liveness probe failed: ...`), oldest first. The caller kills these containers
    /// (the restart policy then restarts them) and records an `Unhealthy` event with the
    /// message. Requests of instances that stopped meanwhile are dropped by `sync_pod`.
    pub fn take_restarts(&self, uid: &str) -> Vec<(String, String, String)> {
        self.shared
            .lock()
            .get_mut(uid)
            .map(|p| std::mem::take(&mut p.restarts))
            .unwrap_or_default()
    }

    /// Number of workers of pod `uid` still probing (not stopped or finished).
    pub fn active_workers(&self, uid: &str) -> usize {
        self.shared.lock().get(uid).map_or(0, |p| {
            p.instances
                .values()
                .flat_map(|i| &i.workers)
                .filter(|(_, w)| !w.is_finished())
                .count()
        })
    }

    fn results(
        &self,
        uid: &str,
        kind: ProbeKind,
        value: impl Fn(&Instance) -> bool,
    ) -> BTreeMap<String, bool> {
        let pods = self.shared.lock();
        let Some(p) = pods.get(uid) else {
            return BTreeMap::new();
        };
        p.probed
            .iter()
            .filter(|(_, kinds)| kinds.contains(&kind))
            .map(|(name, _)| {
                let inst = p.current.get(name).and_then(|id| p.instances.get(id));
                (name.clone(), inst.is_some_and(&value))
            })
            .collect()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, PodProbes>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pod_ip(&self, uid: &str) -> Option<String> {
        self.lock().get(uid).and_then(|p| p.pod_ip.clone())
    }

    /// Applies a decided result of `w`; returns whether the worker goes on probing.
    fn record(&self, w: &Worker, success: bool, message: &str) -> bool {
        let (changed, go_on) = {
            let mut pods = self.lock();
            let Some(p) = pods.get_mut(&w.uid) else {
                return false;
            };
            let Some(inst) = p.instances.get_mut(&w.id) else {
                return false;
            };
            match (w.kind, success) {
                (ProbeKind::Readiness, _) => {
                    let changed = inst.ready != success;
                    inst.ready = success;
                    (changed, true)
                }
                (ProbeKind::Startup, true) => (!inst.started.send_replace(true), false),
                (ProbeKind::Liveness, true) => (false, true),
                (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                    let message = format!("{} probe failed: {message}", w.kind);
                    tracing::info!(pod = %w.uid, container = %w.name, id = %w.id, %message, "container will be restarted");
                    p.restarts.push((w.name.clone(), w.id.clone(), message));
                    (true, false)
                }
            }
        };
        if changed {
            (self.on_change)(&w.uid);
        }
        go_on
    }
}

/// One probe of one container instance.
struct Worker {
    shared: Arc<Shared>,
    uid: String,
    name: String,
    id: String,
    kind: ProbeKind,
    settings: ProbeSettings,
    handler: Handler,
    started_at_ns: i64,
    started: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        if self.kind != ProbeKind::Startup && self.started.wait_for(|s| *s).await.is_err() {
            return;
        }
        let first = self
            .settings
            .first_probe_in(self.started_at_ns, SystemTime::now());
        let mut ticks = tokio::time::interval_at(Instant::now() + first, self.settings.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut run = ResultRun::default();
        loop {
            ticks.tick().await;
            let pod_ip = self.shared.pod_ip(&self.uid);
            let outcome = self
                .handler
                .run(
                    &self.shared.cri,
                    &self.id,
                    pod_ip.as_deref(),
                    self.settings.timeout,
                )
                .await;
            let (success, message) = match outcome {
                Outcome::Success => (true, String::new()),
                Outcome::Failure(m) => {
                    tracing::debug!(pod = %self.uid, container = %self.name, probe = %self.kind, message = %m, "probe failed");
                    (false, m)
                }
                Outcome::Error(e) => {
                    tracing::debug!(pod = %self.uid, container = %self.name, probe = %self.kind, error = %e, "probe could not run");
                    continue;
                }
            };
            let Some(decided) = run.observe(success, &self.settings) else {
                continue;
            };
            if !self.shared.record(&self, decided, &message) {
                return;
            }
        }
    }
}
