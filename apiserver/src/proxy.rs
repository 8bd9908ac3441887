//! `pods/NAME/log`: the apiserver finds the pod's node and streams the logs from that node's
//! kubelet (`GET https://NODE-IP:PORT/containerLogs/NS/POD/CONTAINER?...`), as upstream does.
//! The kubelet's serving certificate is verified against the cluster CA, and the apiserver
//! authenticates with its own client certificate (`kube-apiserver-kubelet-client`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::handlers::{Body, Response};
use crate::request::Query;
use crate::status::{ApiError, ApiResult};

/// Query parameters passed through to the kubelet.
const PASSED: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// A TLS client for kubelets.
#[derive(Debug, Clone)]
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

impl KubeletClient {
    /// A client trusting `ca_pem` and presenting `cert_pem`/`key_pem`.
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> crate::Result<Self> {
        let err = |e: &dyn std::fmt::Display| crate::Error::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| err(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| err(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| err(&e))?;
        Ok(KubeletClient { tls: Arc::new(tls) })
    }

    /// GETs `path_and_query` from the kubelet at `host:port` and streams the answer back.
    pub async fn get(&self, host: &str, port: u16, path_and_query: &str) -> ApiResult<Response> {
        let unavailable =
            |what: String| ApiError::unavailable(format!("kubelet {host}:{port}: {what}"));
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| unavailable("connect timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
        let name =
            ServerName::try_from(host.to_string()).map_err(|e| unavailable(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| unavailable(format!("tls: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::get(path_and_query)
            .header(http::header::HOST, format!("{host}:{port}"))
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body: Body = body.map_err(std::io::Error::other).boxed();
        let mut out = http::Response::from_parts(parts, body);
        if !out.status().is_success() {
            // Keep the kubelet's message but answer as the apiserver would.
            let code = out.status();
            let text = out
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut e = ApiError::bad_request(String::from_utf8_lossy(&text).trim().to_string());
            e.code = code.as_u16();
            return Err(e);
        }
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        Ok(out)
    }
}

/// Where a pod's logs are: (kubelet host, port, path and query), or why not.
pub fn log_location(pod: &Value, node: &Value, query: &Query) -> ApiResult<(String, u16, String)> {
    let name = crate::object::name(pod);
    let ns = crate::object::namespace(pod).unwrap_or("default");
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let inits: Vec<&str> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) || inits.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].to_string(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
        })
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .ok_or_else(|| {
            ApiError::bad_request(format!("node {} has no address", crate::object::name(node)))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    let mut q: Vec<String> = Vec::new();
    for key in PASSED {
        if let Some(v) = query.get(key) {
            q.push(format!("{key}={}", encode(v)));
        }
    }
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    if !q.is_empty() {
        path = format!("{path}?{}", q.join("&"));
    }
    Ok((address.to_string(), port, path))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_location_follows_node_status() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n", "containers": [{"name": "a"}, {"name": "b"}]}});
        let node = json!({"metadata": {"name": "n"}, "status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.5"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}}}});
        let q = Query::parse(Some("container=b&follow=true&tailLines=10&bogus=1"));
        let (host, port, path) = log_location(&pod, &node, &q).unwrap();
        assert_eq!((host.as_str(), port), ("10.0.0.5", 10255));
        assert_eq!(path, "/containerLogs/ns/p/b?follow=true&tailLines=10");
        let err = log_location(&pod, &node, &Query::default()).unwrap_err();
        assert!(
            err.message.contains("choose one of: [a b]"),
            "{}",
            err.message
        );
        assert!(log_location(&pod, &node, &Query::parse(Some("container=zz"))).is_err());
    }
}
