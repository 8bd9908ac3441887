//! The kubelet server (HTTPS, `--port`, default 10250): `/healthz`, `/pods` and
//! `/containerLogs/NS/POD/CONTAINER` with `follow`, `tailLines`, `timestamps`, `previous`,
//! `sinceSeconds` and `limitBytes`, which the apiserver proxies `kubectl logs` to. Clients
//! must present a certificate signed by `--client-ca-file` (the apiserver's kubelet client).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Response body.
type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Where the server finds pods and their logs.
pub trait PodSource: Send + Sync + 'static {
    /// The pods this kubelet runs.
    fn pods(&self) -> Vec<Pod>;
    /// Whether container `name` of pod `uid` is running now.
    fn running(&self, uid: &str, name: &str) -> bool;
    /// The attempt numbers of container `name` of pod `uid`, newest first.
    fn attempts(&self, uid: &str, name: &str) -> Vec<u32>;
}

/// TLS settings of the server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `--tls-cert-file`.
    pub cert: PathBuf,
    /// `--tls-private-key-file`.
    pub key: PathBuf,
    /// `--client-ca-file`.
    pub client_ca: PathBuf,
}

fn text(code: u16, body: String) -> http::Response<Body> {
    let mut r = http::Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

fn query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Serves until the task is dropped; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    tls: &TlsFiles,
    log_root: PathBuf,
    source: Arc<dyn PodSource>,
) -> std::io::Result<SocketAddr> {
    let config = tls_config(tls).map_err(std::io::Error::other)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, source, log_root) =
                (acceptor.clone(), Arc::clone(&source), log_root.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (source, log_root) = (Arc::clone(&source), log_root.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(req, &log_root, source).await)
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn tls_config(tls: &TlsFiles) -> Result<rustls::ServerConfig, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(&tls.client_ca)?) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&tls.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key)?).map_err(|e| e.to_string())?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())
}

async fn handle(
    req: http::Request<hyper::body::Incoming>,
    log_root: &std::path::Path,
    source: Arc<dyn PodSource>,
) -> http::Response<Body> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["healthz"] => text(200, "ok".into()),
        ["pods"] => {
            let list = serde_json::json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": source.pods() });
            let mut r = text(200, list.to_string());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        ["containerLogs", ns, name, container] => {
            let q = query(req.uri().query());
            container_logs(log_root, &source, ns, name, container, &q).await
        }
        _ => text(404, "404 page not found".into()),
    }
}

async fn container_logs(
    log_root: &std::path::Path,
    source: &Arc<dyn PodSource>,
    ns: &str,
    name: &str,
    container: &str,
    q: &HashMap<String, String>,
) -> http::Response<Body> {
    let Some(pod) = source.pods().into_iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(ns) && p.metadata.name.as_deref() == Some(name)
    }) else {
        return text(404, format!("pod {ns}/{name} not found"));
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let attempts = source.attempts(&uid, container);
    let previous = q.get("previous").is_some_and(|v| v == "true");
    let Some(attempt) = (if previous {
        attempts.get(1)
    } else {
        attempts.first()
    })
    .copied() else {
        let what = if previous {
            "previous terminated container"
        } else {
            "container"
        };
        return text(
            400,
            format!("{what} \"{container}\" in pod \"{name}\" not found"),
        );
    };
    let file = log_root
        .join(format!("{ns}_{name}_{uid}"))
        .join(container)
        .join(format!("{attempt}.log"));
    let timestamps = q.get("timestamps").is_some_and(|v| v == "true");
    let tail: Option<usize> = q.get("tailLines").and_then(|v| v.parse().ok());
    let limit: Option<usize> = q.get("limitBytes").and_then(|v| v.parse().ok());
    let since: Option<i64> = q.get("sinceSeconds").and_then(|v| v.parse().ok());
    let follow = q.get("follow").is_some_and(|v| v == "true") && !previous;
    let text_now = tokio::fs::read_to_string(&file).await.unwrap_or_default();
    let cutoff = since.map(|s| k8s_openapi::jiff::Timestamp::now().as_second() - s);
    let render = move |raw: &str| -> Vec<String> {
        raw.lines()
            .filter_map(|l| cri::logs::parse_line(l).ok())
            .filter(|r| {
                cutoff.is_none_or(|c| {
                    r.timestamp
                        .parse::<k8s_openapi::jiff::Timestamp>()
                        .map(|t| t.as_second() >= c)
                        .unwrap_or(true)
                })
            })
            .map(|r| {
                let nl = if r.full { "\n" } else { "" };
                if timestamps {
                    format!("{} {}{nl}", r.timestamp, r.message)
                } else {
                    format!("{}{nl}", r.message)
                }
            })
            .collect()
    };
    let mut lines = render(&text_now);
    if let Some(t) = tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    let mut first: String = lines.concat();
    if let Some(l) = limit {
        first.truncate(l);
    }
    if !follow {
        return text(200, first);
    }
    // Follow: send what is there, then new records as the runtime appends them, until the
    // container stops (and the file has no more) or the client goes away.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let source = Arc::clone(source);
    let (uid2, container2) = (uid.clone(), container.to_string());
    let mut offset = text_now.len();
    tokio::spawn(async move {
        if tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut idle = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let all = tokio::fs::read(&file).await.unwrap_or_default();
            if all.len() > offset {
                let fresh = String::from_utf8_lossy(&all[offset..]).into_owned();
                // Only complete lines; the rest waits for the next read.
                let complete = fresh.rfind('\n').map(|i| i + 1).unwrap_or(0);
                if complete > 0 {
                    offset += complete;
                    idle = 0;
                    let out: String = render(&fresh[..complete]).concat();
                    if tx.send(Bytes::from(out)).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            if !source.running(&uid2, &container2) {
                idle += 1;
                if idle > 5 {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(http_body::Frame::data(b)), rx))
    });
    let mut r = http::Response::new(http_body_util::StreamBody::new(stream).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}
