//! The kubelet's main loops: the Node heartbeat, a watch of the pods bound to this node,
//! the PLEG relist, and one worker per pod that syncs it (sync -> terminating ->
//! terminated): compute the actions from desired vs. actual, carry them out over CRI, and
//! report the status when it changed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;

use crate::actions::{self, Backoff};
use crate::cri_runtime;
use crate::node::{self, NodeConfig};
use crate::runtime::{ContainerState, PodRuntime, Relist, SandboxState};
use crate::{env, pleg, status};

/// Kubelet settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node.
    pub node: NodeConfig,
    /// CRI endpoint (`unix:///...`).
    pub runtime_endpoint: String,
    /// Where container logs go (`/var/log/pods`).
    pub log_root: PathBuf,
    /// Cgroup under which pod cgroups are made (`/kubepods`).
    pub cgroup_root: String,
    /// PLEG relist period.
    pub relist_period: Duration,
    /// Serve `/containerLogs` on `node.port` at this address with these certificates.
    pub server: Option<(std::net::IpAddr, crate::server::TlsFiles)>,
}

#[derive(Default)]
struct State {
    desired: HashMap<String, Pod>,
    relist: Relist,
    backoff: Backoff,
    /// Last failure to start a container: (reason, message), by pod uid and container.
    waiting: HashMap<String, BTreeMap<String, (String, String)>>,
    workers: HashMap<String, tokio::sync::mpsc::Sender<()>>,
}

struct Kubelet {
    client: kube::Client,
    cri: cri::Client,
    cfg: Config,
    state: Mutex<State>,
    events: daemon::events::Recorder,
    prober: Arc<crate::prober::ProbeManager>,
}

/// The event reference of container `name` in `pod` (`spec.containers{name}`).
fn container_ref(pod: &Pod, name: &str) -> k8s_openapi::api::core::v1::ObjectReference {
    let mut r = daemon::events::reference(pod);
    r.field_path = Some(format!("spec.containers{{{name}}}"));
    r
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Kubelet {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the worker of `uid`, starting one if needed.
    fn poke(self: &Arc<Self>, uid: &str) {
        let mut st = self.state();
        if let Some(tx) = st.workers.get(uid)
            && !tx.is_closed()
        {
            // A full channel means the worker is already due to sync.
            let _ = tx.try_send(());
            return;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let _ = tx.try_send(());
        st.workers.insert(uid.to_string(), tx);
        drop(st);
        let me = Arc::clone(self);
        let uid = uid.to_string();
        tokio::spawn(async move { me.worker(uid, rx).await });
    }

    async fn worker(self: Arc<Self>, uid: String, mut rx: tokio::sync::mpsc::Receiver<()>) {
        loop {
            let woke = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            if matches!(woke, Ok(None)) {
                return;
            }
            match self.sync(&uid).await {
                Ok(true) => {
                    // Terminated: nothing of the pod is left.
                    let mut st = self.state();
                    st.workers.remove(&uid);
                    st.waiting.remove(&uid);
                    st.backoff.forget_pod(&uid);
                    drop(st);
                    self.prober.remove_pod(&uid);
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(pod = %uid, error = %e, "pod sync failed"),
            }
        }
    }

    /// One sync; Ok(true) when the pod is gone for good.
    async fn sync(
        self: &Arc<Self>,
        uid: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        // Act on the runtime's current state, never on a relist older than our own last
        // actions (that would start a container twice).
        let mut rt = cri_runtime::relist(&self.cri).await?.remove(uid);
        let pod = self.state().desired.get(uid).cloned();
        // Liveness and startup probe failures: kill the container; the restart policy and
        // back-off then decide when it comes back.
        let restarts = self.prober.take_restarts(uid);
        if let (Some(pod), false) = (&pod, restarts.is_empty()) {
            for (name, id, message) in &restarts {
                let cref = container_ref(pod, name);
                self.events
                    .record(&cref, daemon::events::WARNING, "Unhealthy", message)
                    .await;
                let text = format!("Container {name} failed liveness probe, will be restarted");
                self.events
                    .record(&cref, daemon::events::NORMAL, "Killing", &text)
                    .await;
                self.cri.stop_container(id, grace(pod)).await?;
            }
            rt = cri_runtime::relist(&self.cri).await?.remove(uid);
        }
        let Some(pod) = pod else {
            // Not (or no longer) bound here: an orphan. Remove everything.
            if let Some(rt) = rt {
                self.kill_pod(&rt, 2).await?;
                self.remove_pod(&rt).await?;
            }
            return Ok(true);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(&pod, rt.as_ref()).await;
        }
        let now_ns = Timestamp::now().as_nanosecond() as i64;
        let plan = {
            let st = self.state();
            actions::compute(&pod, rt.as_ref(), &st.backoff, now_ns)
        };
        let mut waiting: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (name, reason) in &plan.waiting_reason {
            let msg = plan.waiting_message.get(name).cloned().unwrap_or_default();
            if reason == actions::CRASH_LOOP_BACK_OFF {
                let pod_name = pod.metadata.name.as_deref().unwrap_or("");
                let text = format!("Back-off restarting failed container {name} in pod {pod_name}");
                self.events
                    .record(
                        &container_ref(&pod, name),
                        daemon::events::WARNING,
                        "BackOff",
                        &text,
                    )
                    .await;
            }
            waiting.insert(name.clone(), (reason.clone(), msg));
        }
        if plan.kill_pod
            && let Some(rt) = &rt
        {
            self.kill_pod(rt, grace(&pod)).await?;
        }
        for (id, reason) in &plan.kill {
            tracing::info!(pod = %uid, container = %id, %reason, "killing container");
            let name = rt
                .as_ref()
                .and_then(|r| r.containers.iter().find(|c| c.id == *id))
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let text = format!("Stopping container {name}");
            self.events
                .record(
                    &container_ref(&pod, &name),
                    daemon::events::NORMAL,
                    "Killing",
                    &text,
                )
                .await;
            self.cri.stop_container(id, grace(&pod)).await?;
        }
        let mut sandbox_id = plan.sandbox_id.clone();
        let sandbox_config = cri_runtime::sandbox_config(
            &pod,
            plan.create_sandbox.unwrap_or_else(|| {
                rt.as_ref()
                    .and_then(|r| r.sandboxes.first())
                    .map(|s| s.attempt)
                    .unwrap_or(0)
            }),
            &self.cfg.log_root,
            &format!("{}/pod{uid}", self.cfg.cgroup_root),
            None,
        );
        if plan.create_sandbox.is_some() {
            sandbox_id = Some(self.cri.run_pod_sandbox(sandbox_config.clone(), "").await?);
        }
        let mut to_start: Vec<(String, u32)> = Vec::new();
        if let Some(init) = &plan.start_init {
            to_start.push((init.clone(), plan.init_attempt));
        }
        to_start.extend(plan.start.iter().cloned());
        if let (Some(sb), false) = (sandbox_id.clone(), to_start.is_empty()) {
            let pod_ip = self
                .cri
                .pod_sandbox_status(&sb)
                .await
                .ok()
                .and_then(|s| s.network.map(|n| n.ip));
            for (name, attempt) in to_start {
                if let Err((reason, message)) = self
                    .start_container(
                        &pod,
                        &sb,
                        &sandbox_config,
                        &name,
                        attempt,
                        pod_ip.as_deref(),
                    )
                    .await
                {
                    tracing::info!(pod = %uid, container = %name, %reason, %message, "container not started");
                    waiting.insert(name, (reason, message));
                }
            }
        }
        // Status from a fresh relist of this pod.
        let fresh = cri_runtime::relist(&self.cri).await?;
        let rt = fresh.get(uid).cloned();
        self.state()
            .waiting
            .insert(uid.to_string(), waiting.clone());
        if let Some(rt) = &rt {
            let running: Vec<(String, String, i64)> = rt
                .containers
                .iter()
                .filter(|c| c.state == ContainerState::Running)
                .map(|c| (c.name.clone(), c.id.clone(), c.started_at))
                .collect();
            let ip = rt.sandboxes.first().and_then(|s| s.ip.clone());
            self.prober.sync_pod(&pod, &running, ip.as_deref());
        }
        self.report(&pod, rt.as_ref(), &waiting).await?;
        Ok(false)
    }

    async fn start_container(
        &self,
        pod: &Pod,
        sandbox: &str,
        sandbox_config: &cri::api::PodSandboxConfig,
        name: &str,
        attempt: u32,
        pod_ip: Option<&str>,
    ) -> Result<(), (String, String)> {
        let spec = pod.spec.clone().unwrap_or_default();
        let Some(c) = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
        else {
            return Err((
                "CreateContainerError".into(),
                format!("no container {name} in the pod spec"),
            ));
        };
        let image = c.image.clone().unwrap_or_default();
        // Images: pull per imagePullPolicy.
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let present = self
            .cri
            .image_status(&image)
            .await
            .map_err(|e| ("ErrImagePull".to_string(), e.to_string()))?
            .is_some();
        if policy == "Never" && !present {
            return Err((
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            ));
        }
        let cref = container_ref(pod, name);
        use daemon::events::{NORMAL, WARNING};
        if policy == "Always" || !present {
            let msg = format!("Pulling image \"{image}\"");
            self.events.record(&cref, NORMAL, "Pulling", &msg).await;
            let pulled = self
                .cri
                .pull_image(&image, Some(sandbox_config.clone()))
                .await;
            if let Err(e) = pulled {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.events.record(&cref, WARNING, "Failed", &msg).await;
                return Err(("ErrImagePull".into(), msg));
            }
            let msg = format!("Successfully pulled image \"{image}\"");
            self.events.record(&cref, NORMAL, "Pulled", &msg).await;
        } else {
            let msg = format!("Container image \"{image}\" already present on machine");
            self.events.record(&cref, NORMAL, "Pulled", &msg).await;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let (cm_names, secret_names) = referenced(c);
        let config_maps = self.fetch::<ConfigMap>(&ns, &cm_names).await;
        let secrets = self.fetch::<Secret>(&ns, &secret_names).await;
        let services = self.services(&ns).await;
        let allocatable = BTreeMap::new();
        let cm = |n: &str| {
            config_maps
                .get(n)
                .map(|c| c.data.clone().unwrap_or_default())
        };
        let sec = |n: &str| {
            secrets.get(n).map(|s| {
                s.data
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            })
        };
        let env = env::container_env(
            pod,
            c,
            &self.cfg.node.name,
            &self.cfg.node.node_ip,
            pod_ip,
            &allocatable,
            &cm,
            &sec,
            &services,
        )
        .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()));
        let env = match env {
            Ok(env) => env,
            Err(e) => {
                self.events
                    .record(&cref, WARNING, "Failed", &format!("Error: {}", e.1))
                    .await;
                return Err(e);
            }
        };
        let command = env::expand_all(&c.command.clone().unwrap_or_default(), &env);
        let args = env::expand_all(&c.args.clone().unwrap_or_default(), &env);
        let config = cri_runtime::container_config(pod, c, attempt, env, command, args);
        let id = match self
            .cri
            .create_container(sandbox, config, sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.events
                    .record(&cref, WARNING, "Failed", &format!("Error: {e}"))
                    .await;
                return Err(("CreateContainerError".to_string(), e.to_string()));
            }
        };
        self.events
            .record(
                &cref,
                NORMAL,
                "Created",
                &format!("Created container {name}"),
            )
            .await;
        if let Err(e) = self.cri.start_container(&id).await {
            self.events
                .record(&cref, WARNING, "Failed", &format!("Error: {e}"))
                .await;
            return Err(("RunContainerError".to_string(), e.to_string()));
        }
        self.events
            .record(
                &cref,
                NORMAL,
                "Started",
                &format!("Started container {name}"),
            )
            .await;
        Ok(())
    }

    /// The named objects of `ns` that exist (a container start reads only what it uses).
    async fn fetch<K>(
        &self,
        ns: &str,
        names: &std::collections::BTreeSet<String>,
    ) -> HashMap<String, K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let mut out = HashMap::new();
        for name in names {
            if let Ok(Some(o)) = api.get_opt(name).await {
                out.insert(name.clone(), o);
            }
        }
        out
    }

    async fn lookup<K>(&self, ns: &str) -> HashMap<String, K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .map(|o| (o.meta().name.clone().unwrap_or_default(), o))
                .collect(),
            Err(_) => HashMap::new(),
        }
    }

    async fn services(&self, ns: &str) -> Vec<Service> {
        let mut out: Vec<Service> = self.lookup::<Service>(ns).await.into_values().collect();
        if ns != "default"
            && let Some(k) = self.lookup::<Service>("default").await.remove("kubernetes")
        {
            out.push(k);
        }
        out
    }

    async fn report(
        &self,
        pod: &Pod,
        rt: Option<&PodRuntime>,
        waiting: &BTreeMap<String, (String, String)>,
    ) -> Result<(), kube::Error> {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        let new = status::pod_status(
            pod,
            rt,
            &self.prober.ready(uid),
            &self.prober.started(uid),
            waiting,
            &self.cfg.node.node_ip,
            Timestamp::now(),
        );
        let old = pod.status.clone().unwrap_or_default();
        if !status::status_changed(&old, &new) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = serde_json::json!({ "status": new });
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }

    async fn kill_pod(&self, rt: &PodRuntime, grace: i64) -> cri::Result<()> {
        let running: Vec<_> = rt
            .containers
            .iter()
            .filter(|c| c.state != ContainerState::Exited)
            .collect();
        let stops = running
            .iter()
            .map(|c| self.cri.stop_container(&c.id, grace));
        for r in futures_util::future::join_all(stops).await {
            r?;
        }
        for s in rt
            .sandboxes
            .iter()
            .filter(|s| s.state == SandboxState::Ready)
        {
            self.cri.stop_pod_sandbox(&s.id).await?;
        }
        Ok(())
    }

    async fn remove_pod(&self, rt: &PodRuntime) -> cri::Result<()> {
        for s in &rt.sandboxes {
            self.cri.stop_pod_sandbox(&s.id).await?;
            self.cri.remove_pod_sandbox(&s.id).await?;
        }
        remove_cgroup(&format!("{}/pod{}", self.cfg.cgroup_root, rt.uid));
        Ok(())
    }

    /// Graceful termination: stop everything within the grace period, remove the sandbox,
    /// then finish the API deletion.
    async fn terminate(
        &self,
        pod: &Pod,
        rt: Option<&PodRuntime>,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or_else(|| grace(pod));
        if let Some(rt) = rt {
            self.kill_pod(rt, grace).await?;
            self.remove_pod(rt).await?;
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(true)
    }
}

impl crate::server::PodSource for Kubelet {
    fn pods(&self) -> Vec<Pod> {
        self.state().desired.values().cloned().collect()
    }

    fn running(&self, uid: &str, name: &str) -> bool {
        self.state().relist.get(uid).is_some_and(|rt| {
            rt.containers
                .iter()
                .any(|c| c.name == name && c.state == ContainerState::Running)
        })
    }

    fn attempts(&self, uid: &str, name: &str) -> Vec<u32> {
        let st = self.state();
        let mut a: Vec<u32> = st
            .relist
            .get(uid)
            .map(|rt| {
                rt.containers
                    .iter()
                    .filter(|c| c.name == name)
                    .map(|c| c.attempt)
                    .collect()
            })
            .unwrap_or_default();
        a.sort_unstable_by(|x, y| y.cmp(x));
        a.dedup();
        a
    }
}

/// Names of the ConfigMaps and Secrets a container's environment refers to.
fn referenced(
    c: &k8s_openapi::api::core::v1::Container,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let (mut cms, mut secrets) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for v in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
        if let Some(r) = &v.config_map_key_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &v.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (cms, secrets)
}

fn grace(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
}

/// Removes an empty pod cgroup in every hierarchy (the runtime removes the containers').
fn remove_cgroup(relative: &str) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(right.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        if let Some(point) = left.split(' ').nth(4) {
            let dir = std::path::Path::new(point).join(relative.trim_start_matches('/'));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Runs the kubelet until the future is dropped.
pub async fn run(
    client: kube::Client,
    mut cfg: Config,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cri = cri::Client::new(&cfg.runtime_endpoint)?;
    let version = cri.wait_ready(Duration::from_secs(30)).await?;
    let facts = node::Facts::read(
        &cfg.node.root_dir,
        &format!("{}://{}", version.runtime_name, version.runtime_version),
    );
    let node_name = cfg.node.name.clone();
    // Probe results wake the pod's worker; the manager is made before the kubelet it
    // calls back into, so it holds a weak reference filled in below.
    let me: Arc<std::sync::OnceLock<std::sync::Weak<Kubelet>>> = Arc::default();
    let wake = Arc::clone(&me);
    let on_change: crate::prober::OnChange = Arc::new(move |uid: &str| {
        if let Some(k) = wake.get().and_then(std::sync::Weak::upgrade) {
            k.poke(uid);
        }
    });
    let prober = crate::prober::ProbeManager::new(cri.clone(), on_change);
    let kubelet = Arc::new(Kubelet {
        client: client.clone(),
        cri,
        cfg: cfg.clone(),
        state: Mutex::new(State::default()),
        events: daemon::events::Recorder::new(client.clone(), "kubelet", Some(&node_name)),
        prober,
    });
    let _ = me.set(Arc::downgrade(&kubelet));
    if let Some((address, tls)) = &cfg.server {
        let source: Arc<dyn crate::server::PodSource> = kubelet.clone();
        let bound = crate::server::serve(
            std::net::SocketAddr::new(*address, cfg.node.port),
            tls,
            cfg.log_root.clone(),
            source,
        )
        .await?;
        // Port 0 picks a free port: report the one bound.
        cfg.node.port = bound.port();
    }
    node::register(&client, &cfg.node).await?;
    tokio::spawn(node::heartbeat(client.clone(), cfg.node.clone(), facts));

    // Pods bound to this node.
    let k = Arc::clone(&kubelet);
    let pods: Api<Pod> = Api::all(client.clone());
    let watch = watcher(
        pods,
        watcher::Config::default().fields(&format!("spec.nodeName={node_name}")),
    );
    tokio::spawn(async move {
        let mut stream = watch.boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                    let id = uid(&p);
                    k.state().desired.insert(id.clone(), p);
                    k.poke(&id);
                }
                Ok(watcher::Event::Delete(p)) => {
                    let id = uid(&p);
                    k.state().desired.remove(&id);
                    k.poke(&id);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });

    // PLEG: relist, diff, wake the workers of the pods that changed (and orphans).
    let mut ticker = tokio::time::interval(kubelet.cfg.relist_period);
    loop {
        ticker.tick().await;
        let new = match cri_runtime::relist(&kubelet.cri).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "relist failed");
                continue;
            }
        };
        let (changed, orphans) = {
            let mut st = kubelet.state();
            let events = pleg::relist_diff(&st.relist, &new);
            for (id, rt) in &new {
                st.backoff.record_exits(id, rt);
            }
            let orphans: Vec<String> = new
                .keys()
                .filter(|id| !st.desired.contains_key(*id))
                .cloned()
                .collect();
            st.relist = new;
            (pleg::pods_with_events(&events), orphans)
        };
        for id in changed.iter().chain(orphans.iter()) {
            kubelet.poke(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_referenced_config_maps_and_secrets_are_read() {
        let c: k8s_openapi::api::core::v1::Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "cm-a"}}, {"secretRef": {"name": "s-a"}}],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-b", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s-a", "key": "k"}}},
                    {"name": "Z", "value": "plain"}],
        }))
        .unwrap();
        let (cms, secrets) = referenced(&c);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), ["cm-a", "cm-b"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["s-a"]);
    }
}
