//! Running one probe: the `exec`, `httpGet`, `tcpSocket` and `grpc` handlers of a
//! container probe, each bounded by the probe's timeout.
//!
//! - `exec` runs the command (with `$(VAR)` references to the container's literal `env`
//!   values expanded) through CRI `ExecSync`; exit code 0 is success, any other code a
//!   failure whose message is the command's output (at most 10 KiB). A timeout reported by
//!   the runtime is a failure; any other runtime error means the probe could not run.
//! - `httpGet` connects to `host` (default: the pod IP) on the port (a number or the name
//!   of one of the container's ports) and sends `GET path` over HTTP/1.1 with the probe's
//!   headers (a `Host` header replaces the default authority; `User-Agent` and `Accept`
//!   have defaults). Status 200 to 399 is success; redirects are not followed. HTTPS is
//!   not supported and fails with a message saying so.
//! - `tcpSocket` succeeds when a connection to host and port opens in time.
//! - `grpc` calls `grpc.health.v1.Health/Check` on the pod IP over cleartext HTTP/2 and
//!   succeeds when the answer is `SERVING`.

use std::error::Error as StdError;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use http::header::{TE, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

/// The most output of an exec probe kept in its message.
pub const MAX_OUTPUT: usize = 10 * 1024;

/// The `User-Agent` of HTTP and gRPC probes unless the probe sets one.
pub const USER_AGENT_VALUE: &str = "kube-probe/1.33";

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The probe succeeded.
    Success,
    /// The probe failed, with a message for the event.
    Failure(String),
    /// The probe could not be run (e.g. the runtime did not answer): not counted.
    Error(String),
}

/// The handler of a probe, resolved against its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// Run a command in the container.
    Exec(Vec<String>),
    /// An HTTP GET.
    HttpGet(HttpGet),
    /// A TCP connection.
    TcpSocket {
        /// Host; the pod IP when `None`.
        host: Option<String>,
        /// Port, or why it could not be resolved.
        port: Result<u16, String>,
    },
    /// A gRPC health check on the pod IP.
    Grpc {
        /// Port, or why it is invalid.
        port: Result<u16, String>,
        /// Service name sent in the request (empty: the server as a whole).
        service: String,
    },
    /// The probe has no handler (invalid): always fails.
    Missing,
}

/// An HTTP GET probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    /// `HTTP` or `HTTPS` (as written, default `HTTP`).
    pub scheme: String,
    /// Host; the pod IP when `None`.
    pub host: Option<String>,
    /// Port, or why it could not be resolved.
    pub port: Result<u16, String>,
    /// Path (and query), starting with `/`.
    pub path: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
}

/// Resolves the port of an `httpGet` or `tcpSocket` probe: a number, or the name of one of
/// the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("container {:?} has no port named {s:?}", c.name))?,
        },
    };
    checked_port(number)
}

fn checked_port(n: i32) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number {n}"))
}

/// `host:port`, with an IPv6 address in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// An error and its sources, joined with `: `.
fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

impl Handler {
    /// The handler of `probe`, a probe of container `c`.
    pub fn new(probe: &Probe, c: &Container) -> Self {
        if let Some(exec) = &probe.exec {
            let env: Vec<(String, String)> = c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.as_ref().map(|v| (e.name.clone(), v.clone())))
                .collect();
            let command = exec.command.clone().unwrap_or_default();
            return Handler::Exec(crate::env::expand_all(&command, &env));
        }
        if let Some(h) = &probe.http_get {
            let path = h.path.clone().unwrap_or_default();
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            return Handler::HttpGet(HttpGet {
                scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".to_string()),
                host: h.host.clone().filter(|s| !s.is_empty()),
                port: resolve_port(&h.port, c),
                path,
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            });
        }
        if let Some(t) = &probe.tcp_socket {
            return Handler::TcpSocket {
                host: t.host.clone().filter(|s| !s.is_empty()),
                port: resolve_port(&t.port, c),
            };
        }
        if let Some(g) = &probe.grpc {
            return Handler::Grpc {
                port: checked_port(g.port),
                service: g.service.clone().unwrap_or_default(),
            };
        }
        Handler::Missing
    }

    /// Runs the probe once against container `container_id` of a pod with IP `pod_ip`,
    /// within `timeout`.
    pub async fn run(
        &self,
        cri: &cri::Client,
        container_id: &str,
        pod_ip: Option<&str>,
        timeout: Duration,
    ) -> Outcome {
        match self {
            Handler::Exec(cmd) => exec(cri, container_id, cmd, timeout).await,
            Handler::HttpGet(h) => http_get(h, pod_ip, timeout).await,
            Handler::TcpSocket { host, port } => {
                let port = match port {
                    Ok(p) => *p,
                    Err(e) => return Outcome::Failure(e.clone()),
                };
                match host.as_deref().or(pod_ip) {
                    Some(host) => tcp_socket(host, port, timeout).await,
                    None => Outcome::Error("the pod has no IP yet".to_string()),
                }
            }
            Handler::Grpc { port, service } => {
                let port = match port {
                    Ok(p) => *p,
                    Err(e) => return Outcome::Failure(e.clone()),
                };
                match pod_ip {
                    Some(host) => grpc_health(host, port, service, timeout).await,
                    None => Outcome::Error("the pod has no IP yet".to_string()),
                }
            }
            Handler::Missing => Outcome::Failure(
                "the probe has no handler (exec, httpGet, tcpSocket or grpc)".to_string(),
            ),
        }
    }
}

/// The message of a failed exec: its output, or its exit code when it printed nothing.
fn exec_message(resp: &cri::api::ExecSyncResponse) -> String {
    let mut out = resp.stdout.clone();
    out.extend_from_slice(&resp.stderr);
    out.truncate(MAX_OUTPUT);
    let text = String::from_utf8_lossy(&out);
    let text = text.trim_end();
    if text.is_empty() {
        format!("command exited with code {}", resp.exit_code)
    } else {
        text.to_string()
    }
}

async fn exec(cri: &cri::Client, id: &str, cmd: &[String], timeout: Duration) -> Outcome {
    if cmd.is_empty() {
        return Outcome::Failure("the exec probe has no command".to_string());
    }
    match cri.exec_sync(id, cmd.to_vec(), timeout).await {
        Ok(resp) if resp.exit_code == 0 => Outcome::Success,
        Ok(resp) => Outcome::Failure(exec_message(&resp)),
        Err(cri::Error::Deadline { .. }) => {
            Outcome::Failure(format!("command {cmd:?} timed out after {}", secs(timeout)))
        }
        Err(e) => Outcome::Error(e.to_string()),
    }
}

async fn tcp_socket(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = authority(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((bare_host(host), port))).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("connect to {addr}: {e}")),
        Err(_) => Outcome::Failure(format!(
            "connect to {addr}: timed out after {}",
            secs(timeout)
        )),
    }
}

/// The request headers of an HTTP probe: the probe's own, then `User-Agent` and `Accept`
/// unless given, and `Host` (the probe's `Host` header, else `authority`).
fn request_headers(headers: &[(String, String)], authority: &str) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid HTTP header name {name:?}"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value of HTTP header {name:?}"))?;
        map.append(n, v);
    }
    if !map.contains_key(USER_AGENT) {
        map.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    if !map.contains_key(ACCEPT) {
        map.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    if !map.contains_key(HOST) {
        let v =
            HeaderValue::from_str(authority).map_err(|_| format!("invalid host {authority:?}"))?;
        map.insert(HOST, v);
    }
    map.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(map)
}

async fn http_get(h: &HttpGet, pod_ip: Option<&str>, timeout: Duration) -> Outcome {
    let port = match &h.port {
        Ok(p) => *p,
        Err(e) => return Outcome::Failure(e.clone()),
    };
    let Some(host) = h.host.as_deref().or(pod_ip) else {
        return Outcome::Error("the pod has no IP yet".to_string());
    };
    let addr = authority(host, port);
    let url = format!("{}://{addr}{}", h.scheme.to_ascii_lowercase(), h.path);
    if h.scheme.eq_ignore_ascii_case("https") {
        return Outcome::Failure(format!(
            "HTTPS probes are not supported by this kubelet (GET {url})"
        ));
    }
    if !h.scheme.eq_ignore_ascii_case("http") {
        return Outcome::Failure(format!("unsupported HTTP probe scheme {:?}", h.scheme));
    }
    let request = match build_get(&h.path, &h.headers, &addr) {
        Ok(r) => r,
        Err(e) => return Outcome::Failure(e),
    };
    match tokio::time::timeout(timeout, send_get(bare_host(host), port, request)).await {
        Ok(Ok(status)) if (200..400).contains(&status) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!(
            "HTTP probe failed with status code {status} (GET {url})"
        )),
        Ok(Err(e)) => Outcome::Failure(format!("GET {url}: {e}")),
        Err(_) => Outcome::Failure(format!("GET {url}: no response within {}", secs(timeout))),
    }
}

fn build_get(
    path: &str,
    headers: &[(String, String)],
    authority: &str,
) -> Result<Request<Empty<Bytes>>, String> {
    let uri: Uri = path
        .parse()
        .map_err(|_| format!("invalid HTTP probe path {path:?}"))?;
    let mut req = Request::new(Empty::new());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.headers_mut() = request_headers(headers, authority)?;
    Ok(req)
}

/// Sends `req` on a new connection to `host:port`; returns the response status.
async fn send_get(host: &str, port: u16, req: Request<Empty<Bytes>>) -> Result<u16, String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| chain(&e))?;
    let mut conn = pin!(conn);
    let mut response = pin!(sender.send_request(req));
    // The connection may finish (the server closed it) in the same poll that delivered
    // the response: the response is then ready.
    let resp = tokio::select! {
        biased;
        resp = &mut response => resp,
        done = &mut conn => match done {
            Ok(()) => response.await,
            Err(e) => return Err(chain(&e)),
        },
    };
    resp.map(|r| r.status().as_u16()).map_err(|e| chain(&e))
}

// ---- gRPC health checking ----

/// Names of the `grpc.health.v1.HealthCheckResponse.ServingStatus` values.
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        n => format!("status {n}"),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A gRPC message frame (uncompressed) of a `HealthCheckRequest` for `service`.
pub fn grpc_health_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// The serving status (`1` is `SERVING`) in a gRPC response body holding one
/// `HealthCheckResponse` frame.
pub fn grpc_health_status(body: &[u8]) -> Result<u64, String> {
    let (&compressed, rest) = body
        .split_first()
        .ok_or_else(|| "empty health check response".to_string())?;
    if compressed != 0 {
        return Err("compressed health check responses are not supported".to_string());
    }
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "truncated health check response".to_string())?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).unwrap_or(usize::MAX);
    let mut msg = rest
        .get(4..4usize.saturating_add(len))
        .ok_or_else(|| "truncated health check response".to_string())?;
    let bad = || "malformed health check response".to_string();
    let mut status = 0;
    while !msg.is_empty() {
        let tag = take_varint(&mut msg).ok_or_else(bad)?;
        let skip = match tag & 7 {
            0 => {
                let v = take_varint(&mut msg).ok_or_else(bad)?;
                if tag >> 3 == 1 {
                    status = v;
                }
                0
            }
            1 => 8,
            2 => usize::try_from(take_varint(&mut msg).ok_or_else(bad)?).map_err(|_| bad())?,
            5 => 4,
            _ => return Err(bad()),
        };
        msg = msg.get(skip..).ok_or_else(bad)?;
    }
    Ok(status)
}

async fn grpc_health(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = authority(host, port);
    match tokio::time::timeout(timeout, grpc_call(host, port, &addr, service)).await {
        Ok(Ok(1)) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!(
            "gRPC health check of {addr} (service {service:?}) answered {}",
            serving_status_name(status)
        )),
        Ok(Err(e)) => Outcome::Failure(format!("gRPC health check of {addr}: {e}")),
        Err(_) => Outcome::Failure(format!(
            "gRPC health check of {addr}: no answer within {}",
            secs(timeout)
        )),
    }
}

async fn grpc_call(host: &str, port: u16, addr: &str, service: &str) -> Result<u64, String> {
    let uri: Uri = format!("http://{addr}/grpc.health.v1.Health/Check")
        .parse()
        .map_err(|_| format!("invalid address {addr:?}"))?;
    let mut req = Request::new(Full::new(Bytes::from(grpc_health_request(service))));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(TE, HeaderValue::from_static("trailers"));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));

    let stream = TcpStream::connect((bare_host(host), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| chain(&e))?;
    let exchange = async {
        let resp = sender.send_request(req).await.map_err(|e| chain(&e))?;
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.map_err(|e| chain(&e))?;
        Ok::<_, String>((parts, collected))
    };
    let mut conn = pin!(conn);
    let mut exchange = pin!(exchange);
    let (parts, collected) = tokio::select! {
        biased;
        r = &mut exchange => r?,
        done = &mut conn => match done {
            Ok(()) => exchange.await?,
            Err(e) => return Err(chain(&e)),
        },
    };
    if !parts.status.is_success() {
        return Err(format!("HTTP status {}", parts.status.as_u16()));
    }
    // A trailers-only answer carries the gRPC status in its headers.
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let code = field("grpc-status").unwrap_or_else(|| "missing".to_string());
    match code.as_str() {
        "0" => grpc_health_status(&collected.to_bytes()),
        "12" => Err(
            "the server does not implement the gRPC health checking protocol \
                     (grpc.health.v1.Health)"
                .to_string(),
        ),
        _ => Err(format!(
            "gRPC status {code}: {}",
            field("grpc-message").unwrap_or_default()
        )),
    }
}
