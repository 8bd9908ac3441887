//! An in-memory fake container runtime serving the real CRI v1 gRPC API on a unix socket, so
//! that kubelet code can be tested against [`crate::Client`] quickly, without containerd and
//! without root. Nothing runs: sandboxes, containers and images are records in memory, and
//! no file is written but the socket.
//!
//! The semantics follow containerd closely enough for a kubelet:
//!
//! - **Sandboxes.** `RunPodSandbox` creates a `SANDBOX_READY` sandbox with a random
//!   64-hex-char id and a pod IP `10.88.0.N` (none for host-network pods, whose network
//!   namespace mode is `NODE`). Config metadata is required (`InvalidArgument`), and a second
//!   sandbox with the same name, namespace, uid and attempt is refused (`AlreadyExists`).
//!   `StopPodSandbox` makes it `SANDBOX_NOTREADY` and stops its running containers as
//!   `StopContainer` would; `RemovePodSandbox` removes it and all its containers. Both answer
//!   `Ok` for unknown ids; `PodSandboxStatus` answers `NotFound`.
//! - **Containers.** `CreateContainer` needs a known sandbox (`NotFound`), an image the fake
//!   has (`NotFound`, `image "X" not found`) and a name and attempt not used in the sandbox
//!   (`AlreadyExists`); the container is `CONTAINER_CREATED`. `StartContainer` makes a created
//!   container `CONTAINER_RUNNING` (`FailedPrecondition` in any other state or in a sandbox
//!   that is not ready). `StopContainer` of a running container records `CONTAINER_EXITED`
//!   with exit code 0 and reason `Completed`, unless [`FakeRuntime::stop_exit`] scripted
//!   another exit; stopping a created or exited container changes nothing, an unknown id is
//!   `NotFound` (as containerd). `RemoveContainer` is idempotent and removes running
//!   containers too. [`FakeRuntime::exit_container`] makes a running container exit on its
//!   own (a crash, a completion, an OOM kill with 137).
//! - **Log paths.** A container's log path is the sandbox's `log_directory` joined with the
//!   container's `log_path` (empty when the container has none).
//! - **Images.** The fake "has" a set of images ([`FakeRuntime::add_image`], `PullImage`).
//!   Names are normalized as containerd does (`nginx` is `docker.io/library/nginx:latest`) and
//!   an image is also found by its id (`sha256:<64 hex>`, derived from its name), which is the
//!   `image_ref` that `PullImage` returns and the one containers report.
//!   [`FakeRuntime::fail_pulls`] makes pulls of a name fail with gRPC `Unknown`.
//! - **Filters.** `ListPodSandbox` and `ListContainers` honour every filter field; like
//!   containerd, the id filters match id prefixes. Lists are in creation order.
//! - **Other calls.** `Version` (runtime name `fake`, API `v1`), `Status` (`RuntimeReady` and
//!   `NetworkReady` true unless [`FakeRuntime::set_condition`] says otherwise), `ExecSync`
//!   (scripted with [`FakeRuntime::on_exec`]; by default exit 0 and the command echoed),
//!   `UpdateContainerResources` (kept and shown in `ContainerStatus.resources`),
//!   `ReopenContainerLog` (running containers only), `ImageFsInfo` (empty). `GetContainerEvents`
//!   is `Unimplemented`, as on containerd 1.6, and so is every other call.
//!
//! Every call is logged by name ([`FakeRuntime::calls`]) and may be made to fail once with
//! [`FakeRuntime::inject_error`], before it has any effect.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::api;
use api::image_service_server::{ImageService, ImageServiceServer};
use api::runtime_service_server::{RuntimeService, RuntimeServiceServer};

/// Exit code and reason of a container stopped by `StopContainer` or `StopPodSandbox`
/// when no exit was scripted.
pub const DEFAULT_STOP_EXIT: (i32, &str) = (0, "Completed");

/// Size every fake image reports, in bytes.
pub const FAKE_IMAGE_SIZE: u64 = 8 * 1024 * 1024;

type ExecFn = dyn Fn(&str, &[String]) -> api::ExecSyncResponse + Send + Sync;
type Handled<T> = Result<Response<T>, Status>;

/// The fake runtime. Cheap to clone: clones share one state, so a test keeps a clone to
/// script and inspect the runtime while a server serves another.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    inner: Arc<Mutex<State>>,
}

/// A running fake server. Dropping it stops the server and removes the socket file.
#[derive(Debug)]
pub struct FakeServer {
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct State {
    seq: u64,
    next_ip: u32,
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    images: Vec<api::Image>,
    failing_pulls: HashMap<String, String>,
    stop_exits: HashMap<String, (i32, String)>,
    errors: HashMap<String, VecDeque<Status>>,
    calls: Vec<String>,
    exec: Option<Arc<ExecFn>>,
    conditions: Vec<api::RuntimeCondition>,
}

struct Sandbox {
    seq: u64,
    config: api::PodSandboxConfig,
    runtime_handler: String,
    state: api::PodSandboxState,
    created_at: i64,
    ip: String,
}

struct Container {
    seq: u64,
    sandbox_id: String,
    config: api::ContainerConfig,
    /// The image's first name (repo tag, else repo digest).
    image_name: String,
    /// The image's id.
    image_id: String,
    log_path: String,
    state: api::ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
    message: String,
    resources: Option<api::ContainerResources>,
}

impl Default for State {
    fn default() -> Self {
        let condition = |kind: &str| api::RuntimeCondition {
            r#type: kind.to_string(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        State {
            seq: 0,
            next_ip: 2,
            sandboxes: HashMap::new(),
            containers: HashMap::new(),
            images: Vec::new(),
            failing_pulls: HashMap::new(),
            stop_exits: HashMap::new(),
            errors: HashMap::new(),
            calls: Vec::new(),
            exec: None,
            conditions: vec![condition("RuntimeReady"), condition("NetworkReady")],
        }
    }
}

impl fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("FakeRuntime")
            .field("sandboxes", &st.sandboxes.len())
            .field("containers", &st.containers.len())
            .field("images", &st.images.len())
            .field("calls", &st.calls.len())
            .finish_non_exhaustive()
    }
}

impl FakeRuntime {
    /// An empty runtime: no sandboxes, containers or images; both conditions ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves both CRI services on a unix socket at `socket` (a stale file there is replaced)
    /// until the returned [`FakeServer`] is dropped. Must be called within a tokio runtime.
    pub async fn serve(&self, socket: &Path) -> std::io::Result<FakeServer> {
        match std::fs::remove_file(socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(socket)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(self.clone()))
            .add_service(ImageServiceServer::new(self.clone()));
        let path = socket.to_path_buf();
        let task = tokio::spawn(async move {
            let incoming = UnixListenerStream::new(listener);
            let shutdown = async {
                // A dropped sender also means stop.
                let _ = stopped.await;
            };
            if let Err(e) = server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
            {
                tracing::warn!(socket = %path.display(), error = %e, "fake CRI server failed");
            }
        });
        Ok(FakeServer {
            socket: socket.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Gives the runtime image `name` (normalized like containerd); returns the image id.
    /// Adding an image it already has changes nothing.
    pub fn add_image(&self, name: &str) -> String {
        self.state().add_image(name)
    }

    /// True when the runtime has image `name` (a name or an image id).
    pub fn has_image(&self, name: &str) -> bool {
        self.state().find_image(name).is_some()
    }

    /// Makes every later `PullImage` of `name` fail with gRPC `Unknown` and `message`.
    pub fn fail_pulls(&self, name: &str, message: &str) {
        self.state()
            .failing_pulls
            .insert(normalize_image(name), message.to_string());
    }

    /// Scripts `ExecSync`: `f(container_id, cmd)` gives the response for running containers.
    /// It runs without the runtime's lock held, so it may use the runtime.
    pub fn on_exec<F>(&self, f: F)
    where
        F: Fn(&str, &[String]) -> api::ExecSyncResponse + Send + Sync + 'static,
    {
        self.state().exec = Some(Arc::new(f));
    }

    /// Scripts the exit that `StopContainer` (and `StopPodSandbox`) records for `container`,
    /// a container id or a container name (`metadata.name`, any sandbox), instead of
    /// [`DEFAULT_STOP_EXIT`]. Lasts until replaced.
    pub fn stop_exit(&self, container: &str, exit_code: i32, reason: &str) {
        self.state()
            .stop_exits
            .insert(container.to_string(), (exit_code, reason.to_string()));
    }

    /// Makes running container `id` exit now with `exit_code` and `reason`, as a crash or a
    /// completion would. Returns false (and changes nothing) when `id` is unknown or the
    /// container is not running.
    pub fn exit_container(&self, id: &str, exit_code: i32, reason: &str) -> bool {
        match self.state().containers.get_mut(id) {
            Some(c) if c.state == api::ContainerState::ContainerRunning => {
                c.exit(exit_code, reason);
                true
            }
            _ => false,
        }
    }

    /// Makes the next call of RPC `op` (its gRPC method name, e.g. `"RunPodSandbox"`) fail
    /// with `status`, before it has any effect. Injections for one RPC queue up.
    pub fn inject_error(&self, op: &str, status: Status) {
        self.state()
            .errors
            .entry(op.to_string())
            .or_default()
            .push_back(status);
    }

    /// Sets runtime condition `kind` (`"RuntimeReady"`, `"NetworkReady"`, or a new one) as
    /// `Status` reports it.
    pub fn set_condition(&self, kind: &str, status: bool, reason: &str, message: &str) {
        let mut st = self.state();
        let condition = api::RuntimeCondition {
            r#type: kind.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        match st.conditions.iter_mut().find(|c| c.r#type == kind) {
            Some(c) => *c = condition,
            None => st.conditions.push(condition),
        }
    }

    /// The gRPC method names of the calls received so far, in order (failed calls too).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// Forgets the calls received so far.
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// Ids of all containers, in creation order.
    pub fn container_ids(&self) -> Vec<String> {
        let st = self.state();
        let mut items: Vec<_> = st
            .containers
            .iter()
            .map(|(id, c)| (c.seq, id.clone()))
            .collect();
        items.sort();
        items.into_iter().map(|(_, id)| id).collect()
    }

    /// Ids of all sandboxes, in creation order.
    pub fn sandbox_ids(&self) -> Vec<String> {
        let st = self.state();
        let mut items: Vec<_> = st
            .sandboxes
            .iter()
            .map(|(id, s)| (s.seq, id.clone()))
            .collect();
        items.sort();
        items.into_iter().map(|(_, id)| id).collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs call `op` and fails it when an error was injected; else returns the state.
    fn enter(&self, op: &'static str) -> Result<MutexGuard<'_, State>, Status> {
        let mut st = self.state();
        st.calls.push(op.to_string());
        tracing::debug!(op, "fake CRI call");
        match st.errors.get_mut(op).and_then(VecDeque::pop_front) {
            Some(status) => Err(status),
            None => Ok(st),
        }
    }

    fn handle<Req, Resp>(
        &self,
        op: &'static str,
        request: Request<Req>,
        f: impl FnOnce(&mut State, Req) -> Result<Resp, Status>,
    ) -> Handled<Resp> {
        let mut st = self.enter(op)?;
        f(&mut st, request.into_inner()).map(Response::new)
    }

    fn unimplemented<T>(&self, op: &'static str) -> Handled<T> {
        drop(self.enter(op)?);
        Err(Status::unimplemented(format!(
            "unknown method {op} for service runtime.v1.RuntimeService"
        )))
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl FakeServer {
    /// The unix socket the server listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops the server and waits until it has stopped (after in-flight calls finish), so
    /// that later calls find no runtime.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

// ---- state ----

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A random 64-hex-char id, unused by any sandbox or container.
    fn new_id(&mut self) -> String {
        loop {
            let seq = self.next_seq();
            let hasher = RandomState::new();
            let [a, b, c, d] = [0u8, 1, 2, 3].map(|part| hasher.hash_one((seq, part)));
            let id = format!("{a:016x}{b:016x}{c:016x}{d:016x}");
            if !self.sandboxes.contains_key(&id) && !self.containers.contains_key(&id) {
                return id;
            }
        }
    }

    fn next_pod_ip(&mut self) -> String {
        loop {
            let n = self.next_ip % 65536;
            self.next_ip = self.next_ip.wrapping_add(1);
            let (high, low) = (n / 256, n % 256);
            if low != 0 && low != 255 && (high, low) != (0, 1) {
                return format!("10.88.{high}.{low}");
            }
        }
    }

    fn find_image(&self, name: &str) -> Option<&api::Image> {
        let normalized = normalize_image(name);
        self.images.iter().find(|image| {
            image.id == name
                || image.id.strip_prefix("sha256:") == Some(name)
                || image.repo_tags.contains(&normalized)
                || image.repo_digests.contains(&normalized)
        })
    }

    fn add_image(&mut self, name: &str) -> String {
        if let Some(image) = self.find_image(name) {
            return image.id.clone();
        }
        let normalized = normalize_image(name);
        let id = image_id(&normalized);
        let (repo_tags, repo_digests) = if normalized.contains('@') {
            (Vec::new(), vec![normalized])
        } else {
            (vec![normalized], Vec::new())
        };
        self.images.push(api::Image {
            id: id.clone(),
            repo_tags,
            repo_digests,
            size: FAKE_IMAGE_SIZE,
            ..Default::default()
        });
        id
    }

    fn sandbox(&self, id: &str) -> Result<&Sandbox, Status> {
        self.sandboxes.get(id).ok_or_else(|| {
            Status::not_found(format!(
                "an error occurred when try to find sandbox {id:?}: not found"
            ))
        })
    }

    fn container(&self, id: &str) -> Result<&Container, Status> {
        self.containers
            .get(id)
            .ok_or_else(|| container_not_found(id))
    }

    fn container_mut(&mut self, id: &str) -> Result<&mut Container, Status> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| container_not_found(id))
    }

    /// Stops container `id` if it runs, with its scripted exit or the default one.
    fn stop(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if c.state != api::ContainerState::ContainerRunning {
            return;
        }
        let name = c
            .config
            .metadata
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or_default();
        let scripted = self
            .stop_exits
            .get(id)
            .or_else(|| self.stop_exits.get(name));
        match scripted {
            Some((code, reason)) => c.exit(*code, reason),
            None => c.exit(DEFAULT_STOP_EXIT.0, DEFAULT_STOP_EXIT.1),
        }
    }

    fn containers_of(&self, sandbox_id: &str) -> Vec<String> {
        let mut ids: Vec<_> = self
            .containers
            .iter()
            .filter(|(_, c)| c.sandbox_id == sandbox_id)
            .map(|(id, c)| (c.seq, id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    // ---- RuntimeService ----

    fn run_pod_sandbox(
        &mut self,
        req: api::RunPodSandboxRequest,
    ) -> Result<api::RunPodSandboxResponse, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("sandbox config is nil"))?;
        let Some(meta) = config.metadata.as_ref() else {
            return Err(Status::invalid_argument(
                "sandbox config must include metadata",
            ));
        };
        let same = |other: &api::PodSandboxMetadata| {
            other.name == meta.name
                && other.namespace == meta.namespace
                && other.uid == meta.uid
                && other.attempt == meta.attempt
        };
        if let Some((id, _)) = self
            .sandboxes
            .iter()
            .find(|(_, s)| s.config.metadata.as_ref().is_some_and(same))
        {
            return Err(Status::already_exists(format!(
                "failed to reserve sandbox name \"{}_{}_{}_{}\": name is reserved for {id:?}",
                meta.name, meta.namespace, meta.uid, meta.attempt
            )));
        }
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.network == api::NamespaceMode::Node as i32);
        let ip = if host_network {
            String::new()
        } else {
            self.next_pod_ip()
        };
        let id = self.new_id();
        let sandbox = Sandbox {
            seq: self.seq,
            config,
            runtime_handler: req.runtime_handler,
            state: api::PodSandboxState::SandboxReady,
            created_at: now_ns(),
            ip,
        };
        self.sandboxes.insert(id.clone(), sandbox);
        Ok(api::RunPodSandboxResponse { pod_sandbox_id: id })
    }

    fn stop_pod_sandbox(
        &mut self,
        req: api::StopPodSandboxRequest,
    ) -> Result<api::StopPodSandboxResponse, Status> {
        let id = req.pod_sandbox_id;
        if self.sandboxes.contains_key(&id) {
            for container in self.containers_of(&id) {
                self.stop(&container);
            }
            if let Some(sandbox) = self.sandboxes.get_mut(&id) {
                sandbox.state = api::PodSandboxState::SandboxNotready;
            }
        }
        Ok(api::StopPodSandboxResponse {})
    }

    fn remove_pod_sandbox(
        &mut self,
        req: api::RemovePodSandboxRequest,
    ) -> Result<api::RemovePodSandboxResponse, Status> {
        let id = req.pod_sandbox_id;
        if self.sandboxes.remove(&id).is_some() {
            self.containers.retain(|_, c| c.sandbox_id != id);
        }
        Ok(api::RemovePodSandboxResponse {})
    }

    fn pod_sandbox_status(
        &mut self,
        req: api::PodSandboxStatusRequest,
    ) -> Result<api::PodSandboxStatusResponse, Status> {
        let id = req.pod_sandbox_id;
        let s = self.sandbox(&id)?;
        let namespace_options = s
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|sc| sc.namespace_options.clone())
            .unwrap_or_default();
        let status = api::PodSandboxStatus {
            id: id.clone(),
            metadata: s.config.metadata.clone(),
            state: s.state as i32,
            created_at: s.created_at,
            network: Some(api::PodSandboxNetworkStatus {
                ip: s.ip.clone(),
                additional_ips: vec![],
            }),
            linux: Some(api::LinuxPodSandboxStatus {
                namespaces: Some(api::Namespace {
                    options: Some(namespace_options),
                }),
            }),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            runtime_handler: s.runtime_handler.clone(),
        };
        Ok(api::PodSandboxStatusResponse {
            status: Some(status),
            timestamp: now_ns(),
            ..Default::default()
        })
    }

    fn list_pod_sandbox(
        &mut self,
        req: api::ListPodSandboxRequest,
    ) -> Result<api::ListPodSandboxResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let mut items: Vec<(u64, api::PodSandbox)> = self
            .sandboxes
            .iter()
            .filter(|(id, s)| {
                id.starts_with(&filter.id)
                    && filter
                        .state
                        .as_ref()
                        .is_none_or(|v| v.state == s.state as i32)
                    && labels_match(&filter.label_selector, &s.config.labels)
            })
            .map(|(id, s)| {
                let item = api::PodSandbox {
                    id: id.clone(),
                    metadata: s.config.metadata.clone(),
                    state: s.state as i32,
                    created_at: s.created_at,
                    labels: s.config.labels.clone(),
                    annotations: s.config.annotations.clone(),
                    runtime_handler: s.runtime_handler.clone(),
                };
                (s.seq, item)
            })
            .collect();
        items.sort_by_key(|(seq, _)| *seq);
        Ok(api::ListPodSandboxResponse {
            items: items.into_iter().map(|(_, s)| s).collect(),
        })
    }

    fn create_container(
        &mut self,
        req: api::CreateContainerRequest,
    ) -> Result<api::CreateContainerResponse, Status> {
        let sandbox_id = req.pod_sandbox_id;
        let sandbox = self.sandboxes.get(&sandbox_id).ok_or_else(|| {
            Status::not_found(format!("failed to get sandbox {sandbox_id:?}: not found"))
        })?;
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("container config is nil"))?;
        let Some(meta) = config.metadata.as_ref() else {
            return Err(Status::invalid_argument(
                "container config must include metadata",
            ));
        };
        let wanted = config
            .image
            .as_ref()
            .map(|i| i.image.as_str())
            .unwrap_or_default();
        let image = self
            .find_image(wanted)
            .ok_or_else(|| Status::not_found(format!("image {wanted:?} not found")))?;
        let image_name = image
            .repo_tags
            .iter()
            .chain(&image.repo_digests)
            .next()
            .cloned()
            .unwrap_or_default();
        let image_id = image.id.clone();
        let same = |c: &Container| {
            c.sandbox_id == sandbox_id
                && c.config
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name == meta.name && m.attempt == meta.attempt)
        };
        if let Some((id, _)) = self.containers.iter().find(|(_, c)| same(c)) {
            return Err(Status::already_exists(format!(
                "failed to reserve container name \"{}_{}\": name is reserved for {id:?}",
                meta.name, meta.attempt
            )));
        }
        let log_path = if config.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&sandbox.config.log_directory)
                .join(&config.log_path)
                .display()
                .to_string()
        };
        let resources = config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|linux| api::ContainerResources {
                linux: Some(linux),
                windows: None,
            });
        let id = self.new_id();
        let container = Container {
            seq: self.seq,
            sandbox_id,
            config,
            image_name,
            image_id,
            log_path,
            state: api::ContainerState::ContainerCreated,
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            resources,
        };
        self.containers.insert(id.clone(), container);
        Ok(api::CreateContainerResponse { container_id: id })
    }

    fn start_container(
        &mut self,
        req: api::StartContainerRequest,
    ) -> Result<api::StartContainerResponse, Status> {
        let id = req.container_id;
        let c = self.container(&id)?;
        if c.state != api::ContainerState::ContainerCreated {
            return Err(Status::failed_precondition(format!(
                "container {id:?} is in {} state",
                c.state.as_str_name()
            )));
        }
        let ready = self
            .sandboxes
            .get(&c.sandbox_id)
            .is_some_and(|s| s.state == api::PodSandboxState::SandboxReady);
        if !ready {
            return Err(Status::failed_precondition(format!(
                "sandbox container {:?} is not running",
                c.sandbox_id
            )));
        }
        let c = self.container_mut(&id)?;
        c.state = api::ContainerState::ContainerRunning;
        c.started_at = now_ns();
        Ok(api::StartContainerResponse {})
    }

    fn stop_container(
        &mut self,
        req: api::StopContainerRequest,
    ) -> Result<api::StopContainerResponse, Status> {
        self.container(&req.container_id)?;
        self.stop(&req.container_id);
        Ok(api::StopContainerResponse {})
    }

    fn remove_container(
        &mut self,
        req: api::RemoveContainerRequest,
    ) -> Result<api::RemoveContainerResponse, Status> {
        self.containers.remove(&req.container_id);
        Ok(api::RemoveContainerResponse {})
    }

    fn list_containers(
        &mut self,
        req: api::ListContainersRequest,
    ) -> Result<api::ListContainersResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let mut items: Vec<(u64, api::Container)> = self
            .containers
            .iter()
            .filter(|(id, c)| {
                id.starts_with(&filter.id)
                    && c.sandbox_id.starts_with(&filter.pod_sandbox_id)
                    && filter
                        .state
                        .as_ref()
                        .is_none_or(|v| v.state == c.state as i32)
                    && labels_match(&filter.label_selector, &c.config.labels)
            })
            .map(|(id, c)| {
                let item = api::Container {
                    id: id.clone(),
                    pod_sandbox_id: c.sandbox_id.clone(),
                    metadata: c.config.metadata.clone(),
                    image: Some(c.image_spec()),
                    image_ref: c.image_id.clone(),
                    state: c.state as i32,
                    created_at: c.created_at,
                    labels: c.config.labels.clone(),
                    annotations: c.config.annotations.clone(),
                    image_id: c.image_id.clone(),
                };
                (c.seq, item)
            })
            .collect();
        items.sort_by_key(|(seq, _)| *seq);
        Ok(api::ListContainersResponse {
            containers: items.into_iter().map(|(_, c)| c).collect(),
        })
    }

    fn container_status(
        &mut self,
        req: api::ContainerStatusRequest,
    ) -> Result<api::ContainerStatusResponse, Status> {
        let id = req.container_id;
        let c = self.container(&id)?;
        let status = api::ContainerStatus {
            id: id.clone(),
            metadata: c.config.metadata.clone(),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: Some(c.image_spec()),
            image_ref: c.image_id.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            mounts: c.config.mounts.clone(),
            log_path: c.log_path.clone(),
            resources: c.resources.clone(),
            image_id: c.image_id.clone(),
            user: None,
        };
        Ok(api::ContainerStatusResponse {
            status: Some(status),
            ..Default::default()
        })
    }

    fn update_container_resources(
        &mut self,
        req: api::UpdateContainerResourcesRequest,
    ) -> Result<api::UpdateContainerResourcesResponse, Status> {
        let id = req.container_id;
        let c = self.container_mut(&id)?;
        if c.state == api::ContainerState::ContainerExited {
            return Err(Status::failed_precondition(format!(
                "container {id:?} is in {} state",
                c.state.as_str_name()
            )));
        }
        let resources = c.resources.get_or_insert_with(Default::default);
        if req.linux.is_some() {
            resources.linux = req.linux;
        }
        if req.windows.is_some() {
            resources.windows = req.windows;
        }
        Ok(api::UpdateContainerResourcesResponse {})
    }

    fn reopen_container_log(
        &mut self,
        req: api::ReopenContainerLogRequest,
    ) -> Result<api::ReopenContainerLogResponse, Status> {
        self.running(&req.container_id)?;
        Ok(api::ReopenContainerLogResponse {})
    }

    /// Checks that container `id` exists and runs.
    fn running(&self, id: &str) -> Result<&Container, Status> {
        let c = self.container(id)?;
        if c.state != api::ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!(
                "container {id:?} is not running (state {})",
                c.state.as_str_name()
            )));
        }
        Ok(c)
    }

    fn version(&mut self, _req: api::VersionRequest) -> Result<api::VersionResponse, Status> {
        Ok(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    fn status(&mut self, _req: api::StatusRequest) -> Result<api::StatusResponse, Status> {
        Ok(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: self.conditions.clone(),
            }),
            ..Default::default()
        })
    }

    // ---- ImageService ----

    fn list_images(
        &mut self,
        req: api::ListImagesRequest,
    ) -> Result<api::ListImagesResponse, Status> {
        let wanted = req
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .unwrap_or_default();
        let images = if wanted.is_empty() {
            self.images.clone()
        } else {
            self.find_image(&wanted).cloned().into_iter().collect()
        };
        Ok(api::ListImagesResponse { images })
    }

    fn image_status(
        &mut self,
        req: api::ImageStatusRequest,
    ) -> Result<api::ImageStatusResponse, Status> {
        let name = required_image(req.image)?;
        Ok(api::ImageStatusResponse {
            image: self.find_image(&name).cloned(),
            ..Default::default()
        })
    }

    fn pull_image(&mut self, req: api::PullImageRequest) -> Result<api::PullImageResponse, Status> {
        let name = required_image(req.image)?;
        if let Some(message) = self.failing_pulls.get(&normalize_image(&name)) {
            return Err(Status::unknown(message.clone()));
        }
        Ok(api::PullImageResponse {
            image_ref: self.add_image(&name),
        })
    }

    fn remove_image(
        &mut self,
        req: api::RemoveImageRequest,
    ) -> Result<api::RemoveImageResponse, Status> {
        let name = required_image(req.image)?;
        if let Some(id) = self.find_image(&name).map(|i| i.id.clone()) {
            self.images.retain(|i| i.id != id);
        }
        Ok(api::RemoveImageResponse {})
    }
}

impl Container {
    fn exit(&mut self, exit_code: i32, reason: &str) {
        self.state = api::ContainerState::ContainerExited;
        self.finished_at = now_ns();
        self.exit_code = exit_code;
        self.reason = reason.to_string();
    }

    fn image_spec(&self) -> api::ImageSpec {
        let asked = self.config.image.clone().unwrap_or_default();
        api::ImageSpec {
            image: self.image_name.clone(),
            ..asked
        }
    }
}

fn container_not_found(id: &str) -> Status {
    Status::not_found(format!(
        "an error occurred when try to find container {id:?}: not found"
    ))
}

fn required_image(spec: Option<api::ImageSpec>) -> Result<String, Status> {
    match spec {
        Some(spec) if !spec.image.is_empty() => Ok(spec.image),
        _ => Err(Status::invalid_argument("image spec is required")),
    }
}

fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A stable fake image id, `sha256:` and 64 hex chars, derived from the image name.
fn image_id(name: &str) -> String {
    let [a, b, c, d] = [0u8, 1, 2, 3].map(|part| {
        let mut hasher = DefaultHasher::new();
        (name, part).hash(&mut hasher);
        hasher.finish()
    });
    format!("sha256:{a:016x}{b:016x}{c:016x}{d:016x}")
}

/// Normalizes an image reference as containerd does: the registry defaults to `docker.io`,
/// single-component Docker Hub names get `library/`, and the tag defaults to `latest`
/// unless a digest is given.
fn normalize_image(name: &str) -> String {
    let (path, digest) = match name.split_once('@') {
        Some((path, digest)) => (path, Some(digest)),
        None => (name, None),
    };
    let (domain, rest) = match path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => ("docker.io", path),
    };
    let mut out = String::from(domain);
    out.push('/');
    if domain == "docker.io" && !rest.contains('/') {
        out.push_str("library/");
    }
    out.push_str(rest);
    let last = rest.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(digest) => {
            out.push('@');
            out.push_str(digest);
        }
        None if !last.contains(':') => out.push_str(":latest"),
        None => {}
    }
    out
}

// ---- gRPC services ----

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<api::ContainerEventResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(&self, r: Request<api::VersionRequest>) -> Handled<api::VersionResponse> {
        self.handle("Version", r, State::version)
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<api::RunPodSandboxRequest>,
    ) -> Handled<api::RunPodSandboxResponse> {
        self.handle("RunPodSandbox", r, State::run_pod_sandbox)
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<api::StopPodSandboxRequest>,
    ) -> Handled<api::StopPodSandboxResponse> {
        self.handle("StopPodSandbox", r, State::stop_pod_sandbox)
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<api::RemovePodSandboxRequest>,
    ) -> Handled<api::RemovePodSandboxResponse> {
        self.handle("RemovePodSandbox", r, State::remove_pod_sandbox)
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<api::PodSandboxStatusRequest>,
    ) -> Handled<api::PodSandboxStatusResponse> {
        self.handle("PodSandboxStatus", r, State::pod_sandbox_status)
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<api::ListPodSandboxRequest>,
    ) -> Handled<api::ListPodSandboxResponse> {
        self.handle("ListPodSandbox", r, State::list_pod_sandbox)
    }

    async fn create_container(
        &self,
        r: Request<api::CreateContainerRequest>,
    ) -> Handled<api::CreateContainerResponse> {
        self.handle("CreateContainer", r, State::create_container)
    }

    async fn start_container(
        &self,
        r: Request<api::StartContainerRequest>,
    ) -> Handled<api::StartContainerResponse> {
        self.handle("StartContainer", r, State::start_container)
    }

    async fn stop_container(
        &self,
        r: Request<api::StopContainerRequest>,
    ) -> Handled<api::StopContainerResponse> {
        self.handle("StopContainer", r, State::stop_container)
    }

    async fn remove_container(
        &self,
        r: Request<api::RemoveContainerRequest>,
    ) -> Handled<api::RemoveContainerResponse> {
        self.handle("RemoveContainer", r, State::remove_container)
    }

    async fn list_containers(
        &self,
        r: Request<api::ListContainersRequest>,
    ) -> Handled<api::ListContainersResponse> {
        self.handle("ListContainers", r, State::list_containers)
    }

    async fn container_status(
        &self,
        r: Request<api::ContainerStatusRequest>,
    ) -> Handled<api::ContainerStatusResponse> {
        self.handle("ContainerStatus", r, State::container_status)
    }

    async fn update_container_resources(
        &self,
        r: Request<api::UpdateContainerResourcesRequest>,
    ) -> Handled<api::UpdateContainerResourcesResponse> {
        self.handle(
            "UpdateContainerResources",
            r,
            State::update_container_resources,
        )
    }

    async fn reopen_container_log(
        &self,
        r: Request<api::ReopenContainerLogRequest>,
    ) -> Handled<api::ReopenContainerLogResponse> {
        self.handle("ReopenContainerLog", r, State::reopen_container_log)
    }

    async fn exec_sync(&self, r: Request<api::ExecSyncRequest>) -> Handled<api::ExecSyncResponse> {
        let req = r.into_inner();
        let exec = {
            let st = self.enter("ExecSync")?;
            st.running(&req.container_id)?;
            st.exec.clone()
        };
        let resp = match exec {
            Some(f) => f(&req.container_id, &req.cmd),
            None => api::ExecSyncResponse {
                stdout: format!("{}\n", req.cmd.join(" ")).into_bytes(),
                stderr: Vec::new(),
                exit_code: 0,
            },
        };
        Ok(Response::new(resp))
    }

    async fn exec(&self, _r: Request<api::ExecRequest>) -> Handled<api::ExecResponse> {
        self.unimplemented("Exec")
    }

    async fn attach(&self, _r: Request<api::AttachRequest>) -> Handled<api::AttachResponse> {
        self.unimplemented("Attach")
    }

    async fn port_forward(
        &self,
        _r: Request<api::PortForwardRequest>,
    ) -> Handled<api::PortForwardResponse> {
        self.unimplemented("PortForward")
    }

    async fn container_stats(
        &self,
        _r: Request<api::ContainerStatsRequest>,
    ) -> Handled<api::ContainerStatsResponse> {
        self.unimplemented("ContainerStats")
    }

    async fn list_container_stats(
        &self,
        _r: Request<api::ListContainerStatsRequest>,
    ) -> Handled<api::ListContainerStatsResponse> {
        self.unimplemented("ListContainerStats")
    }

    async fn pod_sandbox_stats(
        &self,
        _r: Request<api::PodSandboxStatsRequest>,
    ) -> Handled<api::PodSandboxStatsResponse> {
        self.unimplemented("PodSandboxStats")
    }

    async fn list_pod_sandbox_stats(
        &self,
        _r: Request<api::ListPodSandboxStatsRequest>,
    ) -> Handled<api::ListPodSandboxStatsResponse> {
        self.unimplemented("ListPodSandboxStats")
    }

    async fn update_runtime_config(
        &self,
        _r: Request<api::UpdateRuntimeConfigRequest>,
    ) -> Handled<api::UpdateRuntimeConfigResponse> {
        self.unimplemented("UpdateRuntimeConfig")
    }

    async fn status(&self, r: Request<api::StatusRequest>) -> Handled<api::StatusResponse> {
        self.handle("Status", r, State::status)
    }

    async fn checkpoint_container(
        &self,
        _r: Request<api::CheckpointContainerRequest>,
    ) -> Handled<api::CheckpointContainerResponse> {
        self.unimplemented("CheckpointContainer")
    }

    type GetContainerEventsStream = EventStream;

    async fn get_container_events(
        &self,
        _r: Request<api::GetEventsRequest>,
    ) -> Handled<EventStream> {
        self.unimplemented("GetContainerEvents")
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<api::ListMetricDescriptorsRequest>,
    ) -> Handled<api::ListMetricDescriptorsResponse> {
        self.unimplemented("ListMetricDescriptors")
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<api::ListPodSandboxMetricsRequest>,
    ) -> Handled<api::ListPodSandboxMetricsResponse> {
        self.unimplemented("ListPodSandboxMetrics")
    }

    async fn runtime_config(
        &self,
        _r: Request<api::RuntimeConfigRequest>,
    ) -> Handled<api::RuntimeConfigResponse> {
        self.unimplemented("RuntimeConfig")
    }
}

#[tonic::async_trait]
impl ImageService for FakeRuntime {
    async fn list_images(
        &self,
        r: Request<api::ListImagesRequest>,
    ) -> Handled<api::ListImagesResponse> {
        self.handle("ListImages", r, State::list_images)
    }

    async fn image_status(
        &self,
        r: Request<api::ImageStatusRequest>,
    ) -> Handled<api::ImageStatusResponse> {
        self.handle("ImageStatus", r, State::image_status)
    }

    async fn pull_image(
        &self,
        r: Request<api::PullImageRequest>,
    ) -> Handled<api::PullImageResponse> {
        self.handle("PullImage", r, State::pull_image)
    }

    async fn remove_image(
        &self,
        r: Request<api::RemoveImageRequest>,
    ) -> Handled<api::RemoveImageResponse> {
        self.handle("RemoveImage", r, State::remove_image)
    }

    async fn image_fs_info(
        &self,
        r: Request<api::ImageFsInfoRequest>,
    ) -> Handled<api::ImageFsInfoResponse> {
        self.handle("ImageFsInfo", r, |_, _| {
            Ok(api::ImageFsInfoResponse::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_normalize_like_containerd() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("nginx:1.25"),
            "docker.io/library/nginx:1.25"
        );
        assert_eq!(
            normalize_image("docker.io/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(normalize_image("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            normalize_image("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_image("quay.io/a/b@sha256:abcd"),
            "quay.io/a/b@sha256:abcd".to_string()
        );
    }

    #[test]
    fn images_are_found_by_name_and_id() {
        let fake = FakeRuntime::new();
        let id = fake.add_image("busybox");
        assert_eq!(id.len(), "sha256:".len() + 64);
        assert_eq!(fake.add_image("docker.io/library/busybox:latest"), id);
        assert!(fake.has_image("busybox:latest"));
        assert!(fake.has_image(&id));
        assert!(fake.has_image(id.trim_start_matches("sha256:")));
        assert!(!fake.has_image("busybox:1.36"));
    }

    #[test]
    fn ids_and_ips_are_distinct() {
        let mut st = State::default();
        let a = st.new_id();
        let b = st.new_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(st.next_pod_ip(), "10.88.0.2");
        assert_eq!(st.next_pod_ip(), "10.88.0.3");
        st.next_ip = 255;
        assert_eq!(st.next_pod_ip(), "10.88.1.1");
    }
}
