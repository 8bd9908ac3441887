//! An async client for the CRI v1 `RuntimeService` and `ImageService` over a unix socket.
//!
//! Every call carries a deadline: the gRPC `grpc-timeout` header tells the runtime, and a local
//! timer enforces it even when the runtime never answers. The channel connects lazily and
//! reconnects by itself, so a client may be built before the runtime listens.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Error, Result};

/// Default deadline of a CRI call, as the kubelet's `--runtime-request-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default deadline of an image pull, which may legitimately take much longer.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// A CRI client. Cheap to clone: clones share one HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct Client {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    socket: PathBuf,
    timeout: Duration,
    pull_timeout: Duration,
}

/// Parses a CRI endpoint: `unix:///path/to.sock` or a plain absolute path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf> {
    let path = match endpoint.strip_prefix("unix://") {
        Some(rest) => rest,
        None if endpoint.contains("://") => {
            return Err(Error::Endpoint {
                endpoint: endpoint.to_string(),
                reason: "only unix:// endpoints are supported",
            });
        }
        None => endpoint,
    };
    if !path.starts_with('/') {
        return Err(Error::Endpoint {
            endpoint: endpoint.to_string(),
            reason: "the socket path must be absolute",
        });
    }
    Ok(PathBuf::from(path))
}

impl Client {
    /// Builds a client for `endpoint` (`unix:///run/containerd/containerd.sock` or a path).
    /// Does not connect yet: the first call does, and later calls reconnect as needed.
    pub fn new(endpoint: &str) -> Result<Self> {
        let socket = socket_path(endpoint)?;
        let path = socket.clone();
        // The URI is required by tonic but never used: the connector below opens the socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }));
        Ok(Client {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(16 * 1024 * 1024),
            image: ImageServiceClient::new(channel).max_decoding_message_size(16 * 1024 * 1024),
            socket,
            timeout: DEFAULT_TIMEOUT,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
        })
    }

    /// Sets the deadline of every call but image pulls.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the deadline of image pulls.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// The unix socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits until the runtime answers `Version`, polling until `within` has passed.
    pub async fn wait_ready(&self, within: Duration) -> Result<api::VersionResponse> {
        let deadline = tokio::time::Instant::now() + within;
        let probe = self.clone().with_timeout(Duration::from_secs(2));
        loop {
            match probe.version().await {
                Ok(v) => return Ok(v),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    // ---- RuntimeService ----

    /// Runtime name, version and CRI API version.
    pub async fn version(&self) -> Result<api::VersionResponse> {
        let req = api::VersionRequest {
            version: "v1".into(),
        };
        unary(
            "Version",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.version(r).await },
        )
        .await
    }

    /// Runtime conditions (RuntimeReady, NetworkReady).
    pub async fn status(&self, verbose: bool) -> Result<api::StatusResponse> {
        let req = api::StatusRequest { verbose };
        unary(
            "Status",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.status(r).await },
        )
        .await
    }

    /// Creates and starts a pod sandbox; returns its id.
    pub async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        let resp = unary(
            "RunPodSandbox",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.run_pod_sandbox(r).await },
        )
        .await?;
        Ok(resp.pod_sandbox_id)
    }

    /// Stops a sandbox and all its containers. Idempotent: an unknown id is not an error.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        unary(
            "StopPodSandbox",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.stop_pod_sandbox(r).await },
        )
        .await
        .map(drop)
        .or_else(gone_is_done)
    }

    /// Removes a sandbox and all its containers. Idempotent: an unknown id is not an error.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        unary(
            "RemovePodSandbox",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.remove_pod_sandbox(r).await },
        )
        .await
        .map(drop)
        .or_else(gone_is_done)
    }

    /// Status of one sandbox (state, network, metadata).
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        let resp = unary(
            "PodSandboxStatus",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.pod_sandbox_status(r).await },
        )
        .await?;
        resp.status
            .ok_or_else(|| missing("PodSandboxStatus", "status"))
    }

    /// Lists sandboxes, optionally filtered.
    pub async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let req = api::ListPodSandboxRequest { filter };
        let resp = unary(
            "ListPodSandbox",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.list_pod_sandbox(r).await },
        )
        .await?;
        Ok(resp.items)
    }

    /// Creates a container in a sandbox; returns its id.
    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let resp = unary(
            "CreateContainer",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.create_container(r).await },
        )
        .await?;
        Ok(resp.container_id)
    }

    /// Starts a created container.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let req = api::StartContainerRequest {
            container_id: id.to_string(),
        };
        unary(
            "StartContainer",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.start_container(r).await },
        )
        .await
        .map(drop)
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace` seconds. Idempotent: an
    /// unknown id is not an error.
    pub async fn stop_container(&self, id: &str, grace: i64) -> Result<()> {
        let req = api::StopContainerRequest {
            container_id: id.to_string(),
            timeout: grace,
        };
        // The runtime may wait the whole grace period before it answers.
        let deadline = self.timeout + Duration::from_secs(grace.max(0).unsigned_abs());
        unary(
            "StopContainer",
            deadline,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.stop_container(r).await },
        )
        .await
        .map(drop)
        .or_else(gone_is_done)
    }

    /// Removes a container, killing it first if it runs. Idempotent: an unknown id is not an
    /// error.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let req = api::RemoveContainerRequest {
            container_id: id.to_string(),
        };
        unary(
            "RemoveContainer",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.remove_container(r).await },
        )
        .await
        .map(drop)
        .or_else(gone_is_done)
    }

    /// Lists containers, optionally filtered.
    pub async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let req = api::ListContainersRequest { filter };
        let resp = unary(
            "ListContainers",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.list_containers(r).await },
        )
        .await?;
        Ok(resp.containers)
    }

    /// Status of one container (state, exit code, reason, timestamps, log path).
    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let req = api::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        let resp = unary(
            "ContainerStatus",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.container_status(r).await },
        )
        .await?;
        resp.status
            .ok_or_else(|| missing("ContainerStatus", "status"))
    }

    /// Runs `cmd` in a container and waits for it, for at most `timeout` (zero: no limit
    /// but the call's own deadline).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        let req = api::ExecSyncRequest {
            container_id: id.to_string(),
            cmd,
            timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        };
        unary(
            "ExecSync",
            self.timeout + timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.exec_sync(r).await },
        )
        .await
    }

    /// Prepares a streaming exec and returns the URL to connect to.
    pub async fn exec(&self, req: api::ExecRequest) -> Result<String> {
        let resp = unary(
            "Exec",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.exec(r).await },
        )
        .await?;
        Ok(resp.url)
    }

    /// Updates the cgroup resources of a running container.
    pub async fn update_container_resources(
        &self,
        id: &str,
        linux: api::LinuxContainerResources,
    ) -> Result<()> {
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        unary(
            "UpdateContainerResources",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.update_container_resources(r).await },
        )
        .await
        .map(drop)
    }

    /// Asks the runtime to reopen a container's log file (after rotation).
    pub async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let req = api::ReopenContainerLogRequest {
            container_id: id.to_string(),
        };
        unary(
            "ReopenContainerLog",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.reopen_container_log(r).await },
        )
        .await
        .map(drop)
    }

    /// Resource usage of containers, optionally filtered.
    pub async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>> {
        let req = api::ListContainerStatsRequest { filter };
        let resp = unary(
            "ListContainerStats",
            self.timeout,
            self.runtime.clone(),
            req,
            |mut c, r| async move { c.list_container_stats(r).await },
        )
        .await?;
        Ok(resp.stats)
    }

    /// Subscribes to container events. Runtimes without event support (containerd 1.6)
    /// answer [`Error::Unimplemented`], on the call or on the first message.
    pub async fn get_container_events(
        &self,
    ) -> Result<tonic::Streaming<api::ContainerEventResponse>> {
        let req = api::GetEventsRequest {};
        let mut client = self.runtime.clone();
        let call = client.get_container_events(tonic::Request::new(req));
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(Error::Deadline {
                op: "GetContainerEvents",
                timeout: self.timeout,
            }),
            Ok(Err(status)) => Err(Error::from_status("GetContainerEvents", &status)),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        }
    }

    // ---- ImageService ----

    /// Lists images, optionally filtered.
    pub async fn list_images(&self, filter: Option<api::ImageFilter>) -> Result<Vec<api::Image>> {
        let req = api::ListImagesRequest { filter };
        let resp = unary(
            "ListImages",
            self.timeout,
            self.image.clone(),
            req,
            |mut c, r| async move { c.list_images(r).await },
        )
        .await?;
        Ok(resp.images)
    }

    /// The image `image` refers to, or `None` when the runtime does not have it.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let req = api::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let resp = unary(
            "ImageStatus",
            self.timeout,
            self.image.clone(),
            req,
            |mut c, r| async move { c.image_status(r).await },
        )
        .await?;
        Ok(resp.image)
    }

    /// Pulls `image`; returns the image reference the runtime stored.
    pub async fn pull_image(
        &self,
        image: &str,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        let req = api::PullImageRequest {
            image: Some(image_spec(image)),
            auth: None,
            sandbox_config,
        };
        let resp = unary(
            "PullImage",
            self.pull_timeout,
            self.image.clone(),
            req,
            |mut c, r| async move { c.pull_image(r).await },
        )
        .await?;
        Ok(resp.image_ref)
    }

    /// Removes an image. Idempotent.
    pub async fn remove_image(&self, image: &str) -> Result<()> {
        let req = api::RemoveImageRequest {
            image: Some(image_spec(image)),
        };
        unary(
            "RemoveImage",
            self.timeout,
            self.image.clone(),
            req,
            |mut c, r| async move { c.remove_image(r).await },
        )
        .await
        .map(drop)
        .or_else(gone_is_done)
    }

    /// Usage of the filesystems that hold images.
    pub async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse> {
        let req = api::ImageFsInfoRequest {};
        unary(
            "ImageFsInfo",
            self.timeout,
            self.image.clone(),
            req,
            |mut c, r| async move { c.image_fs_info(r).await },
        )
        .await
    }
}

/// CRI requires stop and remove calls to be idempotent, but containerd 1.6 answers NotFound
/// once an object is gone: that is the state the caller asked for.
fn gone_is_done(e: Error) -> Result<()> {
    if e.is_not_found() { Ok(()) } else { Err(e) }
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn missing(op: &'static str, field: &'static str) -> Error {
    Error::Other {
        op,
        code: tonic::Code::Internal,
        message: format!("runtime answered without {field}"),
    }
}

/// Runs one unary call with `timeout` as both the gRPC deadline and a local timer.
async fn unary<C, Req, Resp, F, Fut>(
    op: &'static str,
    timeout: Duration,
    client: C,
    req: Req,
    call: F,
) -> Result<Resp>
where
    F: FnOnce(C, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
{
    let mut request = tonic::Request::new(req);
    request.set_timeout(timeout);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(timeout, call(client, request)).await;
    tracing::trace!(op, elapsed = ?started.elapsed(), ok = matches!(result, Ok(Ok(_))), "cri call");
    match result {
        Err(_) => Err(Error::Deadline { op, timeout }),
        Ok(Err(status)) => Err(match Error::from_status(op, &status) {
            Error::Deadline { op, .. } => Error::Deadline { op, timeout },
            e => e,
        }),
        Ok(Ok(resp)) => Ok(resp.into_inner()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            socket_path("unix:///run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            socket_path("/run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert!(matches!(
            socket_path("tcp://1.2.3.4:5"),
            Err(Error::Endpoint { .. })
        ));
        assert!(matches!(
            socket_path("relative.sock"),
            Err(Error::Endpoint { .. })
        ));
    }

    #[tokio::test]
    async fn absent_socket_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let client = Client::new(sock.to_str().unwrap()).unwrap();
        let err = client.version().await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    }
}
