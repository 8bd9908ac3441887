//! `/healthz`, `/livez`, `/readyz` and `/metrics` on a small HTTP/1.1 server, as the
//! upstream daemons serve them on their `--bind-address`/health ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;

use crate::{Error, Result};

/// Shared state of the endpoint.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// Metrics registry rendered at `/metrics`.
    pub registry: std::sync::Mutex<Registry>,
}

impl Health {
    /// New endpoint state: live, not yet ready.
    pub fn new(registry: Registry) -> Arc<Self> {
        Arc::new(Health {
            ready: AtomicBool::new(false),
            registry: std::sync::Mutex::new(registry),
        })
    }

    /// Marks the daemon ready (caches synced, leader or standing by).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Binds `addr` and serves until the task is dropped. Returns the bound address.
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Serve {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Serve {
        addr: addr.to_string(),
        source,
    })?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let health = Arc::clone(&health);
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let health = Arc::clone(&health);
                        async move {
                            let (code, ct, body) = match req.uri().path() {
                                "/healthz" | "/livez" => (200, "text/plain", "ok".to_string()),
                                "/readyz" if health.ready.load(Ordering::Relaxed) => {
                                    (200, "text/plain", "ok".to_string())
                                }
                                "/readyz" => (503, "text/plain", "not ready".to_string()),
                                "/metrics" => (
                                    200,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                    health.metrics(),
                                ),
                                _ => (404, "text/plain", "not found".to_string()),
                            };
                            let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() =
                                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
                            resp.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static(ct),
                            );
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out)
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("scheduler_schedule_attempts", "Attempts", c.clone());
        c.inc();
        let health = Health::new(registry);
        let addr = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&health))
            .await
            .unwrap();
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            body.contains("scheduler_schedule_attempts_total 1"),
            "{body}"
        );
    }
}
