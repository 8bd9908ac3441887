//! The scheduler daemon: watches nodes and pods, keeps the queue and the assume cache, and
//! places one pod at a time: snapshot (watched pods plus assumed ones) -> filter and score
//! -> assume -> bind through `pods/binding` in the background. A pod that fits nowhere backs
//! off and gets a PodScheduled=False condition and a FailedScheduling event naming why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::cache::AssumeCache;
use crate::framework;
use crate::queue::{ClusterEvent, SchedulingQueue};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scheduler_name: "default-scheduler".into(),
        }
    }
}

/// Metrics with upstream names.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `scheduler_schedule_attempts_total{result}`.
    pub attempts: Family<Vec<(String, String)>, Counter>,
    /// `scheduler_scheduling_attempt_duration_seconds`.
    pub attempt_duration: Histogram,
}

impl Metrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = Metrics {
            attempts: Family::default(),
            attempt_duration: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
            ),
        };
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by result.",
            m.attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
            m.attempt_duration.clone(),
        );
        m
    }
}

#[derive(Debug)]
struct State {
    queue: SchedulingQueue,
    cache: AssumeCache,
    /// Nodes with the pods bound (or assumed) on them, kept up to date event by event so a
    /// scheduling attempt never rebuilds it.
    snapshot: framework::Snapshot,
    pods: HashMap<String, Pod>,
    synced_nodes: bool,
    synced_pods: bool,
    /// Where the next sampled node search starts.
    next_start: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            queue: SchedulingQueue::default(),
            cache: AssumeCache::default(),
            snapshot: framework::Snapshot::new(std::iter::empty(), std::iter::empty()),
            pods: HashMap::new(),
            synced_nodes: false,
            synced_pods: false,
            next_start: 0,
        }
    }
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

struct Scheduler {
    client: kube::Client,
    opts: Options,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    recorder: daemon::events::Recorder,
    metrics: Metrics,
}

impl Scheduler {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ours(&self, pod: &Pod) -> bool {
        let spec = pod.spec.as_ref();
        spec.and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty)
            && spec
                .and_then(|s| s.scheduler_name.as_deref())
                .unwrap_or("default-scheduler")
                == self.opts.scheduler_name
            && pod.metadata.deletion_timestamp.is_none()
            && !terminal(pod)
    }

    fn pod_seen(&self, pod: Pod) {
        let now = Instant::now();
        let k = key(&pod);
        let mut st = self.state();
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if assigned {
            st.cache.confirm(&pod);
            st.queue.delete(&k);
            if terminal(&pod) {
                st.snapshot.remove_pod(&k);
                st.queue
                    .move_all_to_active_or_backoff(ClusterEvent::AssignedPodUpdated, now);
            } else {
                st.snapshot.add_pod(pod.clone());
            }
        } else if self.ours(&pod) {
            if st.queue.contains(&k) {
                st.queue.update(pod.clone(), now);
            } else if !st.cache.is_assumed(&k) {
                st.queue.add(pod.clone(), now);
            }
        } else {
            st.queue.delete(&k);
        }
        st.pods.insert(k, pod);
        drop(st);
        self.wake.notify_one();
    }

    fn pod_gone(&self, pod: &Pod) {
        let k = key(pod);
        let mut st = self.state();
        st.pods.remove(&k);
        st.queue.delete(&k);
        st.cache.forget(&k);
        st.snapshot.remove_pod(&k);
        st.queue
            .move_all_to_active_or_backoff(ClusterEvent::AssignedPodDeleted, Instant::now());
        drop(st);
        self.wake.notify_one();
    }

    fn node_seen(&self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut st = self.state();
        let event = if st.snapshot.get(&name).is_some() {
            ClusterEvent::NodeUpdated
        } else {
            ClusterEvent::NodeAdded
        };
        st.snapshot.set_node(node);
        st.queue
            .move_all_to_active_or_backoff(event, Instant::now());
        drop(st);
        self.wake.notify_one();
    }

    /// One scheduling attempt; returns false when nothing is ready to schedule.
    async fn schedule_one(self: &Arc<Self>, rng: &mut impl FnMut() -> u64) -> bool {
        let started = Instant::now();
        let (pod, outcome) = {
            let mut st = self.state();
            if !(st.synced_nodes && st.synced_pods) {
                return false;
            }
            for expired in st.cache.expire(started) {
                tracing::warn!(pod = %expired, "assumed pod expired without its binding being observed");
                let bound = st
                    .pods
                    .get(&expired)
                    .is_some_and(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some());
                if !bound {
                    st.snapshot.remove_pod(&expired);
                }
            }
            let Some(k) = st.queue.pop(started) else {
                return false;
            };
            let Some(pod) = st.queue.pod(&k).cloned() else {
                return true;
            };
            let start = st.next_start;
            let outcome = framework::schedule_sampled(&pod, &st.snapshot, start, rng);
            let outcome = outcome.map(|(node, next)| {
                st.next_start = next;
                node
            });
            match &outcome {
                Ok(node) => {
                    st.cache.assume(&pod, node);
                    let mut assumed = pod.clone();
                    if let Some(spec) = assumed.spec.as_mut() {
                        spec.node_name = Some(node.clone());
                    }
                    st.snapshot.add_pod(assumed);
                    st.queue.done(&k);
                }
                Err(_) => {
                    st.queue.failed(&k, started);
                }
            }
            (pod, outcome)
        };
        match outcome {
            Ok(node) => {
                let this = Arc::clone(self);
                tokio::spawn(async move { this.bind(pod, node, started).await });
            }
            Err(fit) => {
                self.metrics
                    .attempts
                    .get_or_create(&vec![("result".into(), "unschedulable".into())])
                    .inc();
                self.metrics
                    .attempt_duration
                    .observe(started.elapsed().as_secs_f64());
                let message = fit.to_string();
                tracing::info!(pod = %key(&pod), %message, "unschedulable");
                self.mark_unschedulable(&pod, &message).await;
            }
        }
        true
    }

    async fn bind(&self, pod: Pod, node: String, started: Instant) {
        let k = key(&pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.clone()),
                api_version: Some("v1".into()),
                ..Default::default()
            },
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let result = pods
            .create_subresource::<Binding, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await;
        match result {
            Ok(_) => {
                self.state().cache.finish_binding(&k, Instant::now());
                self.metrics
                    .attempts
                    .get_or_create(&vec![("result".into(), "scheduled".into())])
                    .inc();
                self.metrics
                    .attempt_duration
                    .observe(started.elapsed().as_secs_f64());
                let reference = daemon::events::reference(&pod);
                let msg = format!("Successfully assigned {ns}/{name} to {node}");
                self.recorder
                    .record(&reference, daemon::events::NORMAL, "Scheduled", &msg)
                    .await;
            }
            Err(e) => {
                tracing::warn!(pod = %k, %node, error = %e, "binding failed");
                self.metrics
                    .attempts
                    .get_or_create(&vec![("result".into(), "error".into())])
                    .inc();
                let mut st = self.state();
                st.cache.forget(&k);
                st.snapshot.remove_pod(&k);
                // Requeue unless the pod is gone or bound by someone else.
                if let Some(current) = st.pods.get(&k).cloned()
                    && self.ours(&current)
                {
                    st.queue.add(current, Instant::now());
                }
                drop(st);
                self.wake.notify_one();
            }
        }
    }

    async fn mark_unschedulable(&self, pod: &Pod, message: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let already = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message));
        if !already {
            let patch = serde_json::json!({ "status": { "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": null, "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
            }] } });
            if let Err(e) = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "setting PodScheduled=False");
            }
        }
        let reference = daemon::events::reference(pod);
        self.recorder
            .record(
                &reference,
                daemon::events::WARNING,
                "FailedScheduling",
                message,
            )
            .await;
    }
}

/// Runs the scheduler until the watches end (they do not, normally) or `work` is dropped.
pub async fn run(client: kube::Client, opts: Options, metrics: Metrics) {
    let sched = Arc::new(Scheduler {
        recorder: daemon::events::Recorder::new(client.clone(), &opts.scheduler_name, None),
        client: client.clone(),
        opts,
        state: Mutex::new(State::default()),
        wake: tokio::sync::Notify::new(),
        metrics,
    });
    let pods_task = {
        let s = Arc::clone(&sched);
        let api: Api<Pod> = Api::all(client.clone());
        async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            let mut fresh: Option<HashMap<String, Pod>> = None;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Init) => fresh = Some(HashMap::new()),
                    Ok(watcher::Event::InitApply(p)) => {
                        if let Some(f) = fresh.as_mut() {
                            f.insert(key(&p), p.clone());
                        }
                        s.pod_seen(p);
                    }
                    Ok(watcher::Event::InitDone) => {
                        let seen = fresh.take().unwrap_or_default();
                        let gone: Vec<Pod> = s
                            .state()
                            .pods
                            .values()
                            .filter(|p| !seen.contains_key(&key(p)))
                            .cloned()
                            .collect();
                        for p in gone {
                            s.pod_gone(&p);
                        }
                        s.state().synced_pods = true;
                        s.wake.notify_one();
                    }
                    Ok(watcher::Event::Apply(p)) => s.pod_seen(p),
                    Ok(watcher::Event::Delete(p)) => s.pod_gone(&p),
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    };
    let nodes_task = {
        let s = Arc::clone(&sched);
        let api: Api<Node> = Api::all(client.clone());
        async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Init) => {}
                    Ok(watcher::Event::InitApply(n)) | Ok(watcher::Event::Apply(n)) => {
                        s.node_seen(n)
                    }
                    Ok(watcher::Event::InitDone) => {
                        s.state().synced_nodes = true;
                        s.wake.notify_one();
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        let name = n.metadata.name.unwrap_or_default();
                        s.state().snapshot.remove_node(&name);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "node watch");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    };
    let loop_task = {
        let s = Arc::clone(&sched);
        async move {
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
            let mut rng = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            loop {
                if s.schedule_one(&mut rng).await {
                    continue;
                }
                let wakeup = s.state().queue.next_wakeup();
                let sleep = wakeup
                    .map(|w| w.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    _ = s.wake.notified() => {}
                    _ = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
                }
            }
        }
    };
    tokio::join!(pods_task, nodes_task, loop_task);
}
