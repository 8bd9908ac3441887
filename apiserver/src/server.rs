//! Serving: HTTPS with client-certificate and bearer-token authentication, HTTP/1.1 and
//! HTTP/2 (kubectl negotiates h2), routing to health, discovery, OpenAPI and the resource
//! handlers, and bootstrap of the objects every cluster has (system namespaces, the
//! `kubernetes` Service and its endpoints).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::alloc::{Allocator, Cidr};
use crate::auth::{TokenFile, User};
use crate::error::{Error, Result};
use crate::handlers::{self, Api, Request, Response, error_response, value_response};
use crate::request::{self, Query, Route};
use crate::status::ApiError;
use crate::store::Store;
use crate::{certs, discovery, object, registry};

/// Server settings (upstream flag names in the CLI).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--bind-address`.
    pub bind_address: IpAddr,
    /// `--secure-port` (0 picks a free port, for tests).
    pub secure_port: u16,
    /// `--advertise-address`: the address in the `kubernetes` endpoints.
    pub advertise_address: IpAddr,
    /// `--data-dir`: certificates, kubeconfig and the embedded store.
    pub data_dir: PathBuf,
    /// `--token-auth-file`.
    pub token_auth_file: Option<PathBuf>,
    /// `--service-cluster-ip-range`.
    pub service_cluster_ip_range: Cidr,
    /// `--service-node-port-range`.
    pub service_node_port_range: (u16, u16),
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Interval of watch bookmarks.
    pub bookmark_interval: Duration,
}

impl Config {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            bind_address: IpAddr::from([127, 0, 0, 1]),
            secure_port: 6443,
            advertise_address: IpAddr::from([127, 0, 0, 1]),
            data_dir: data_dir.into(),
            token_auth_file: None,
            service_cluster_ip_range: Cidr {
                network: [10, 96, 0, 0].into(),
                prefix: 12,
            },
            service_node_port_range: (30000, 32767),
            tls_sans: Vec::new(),
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// A bound, not yet serving apiserver.
pub struct Server {
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    /// Where the admin kubeconfig was written.
    pub kubeconfig: PathBuf,
}

#[derive(Debug)]
struct State {
    api: Arc<Api>,
    tokens: TokenFile,
    server_address: String,
}

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Tls(e.to_string())
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr())
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl Server {
    /// Prepares certificates, binds the port, loads allocations and bootstraps objects.
    pub async fn bind(config: Config, store: Arc<dyn Store>) -> Result<Self> {
        let addr = SocketAddr::new(config.bind_address, config.secure_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Listen {
            addr: addr.to_string(),
            source,
        })?;

        let alloc = Allocator::new(
            config.service_cluster_ip_range,
            config.service_node_port_range,
        );
        let mut dns: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut ips: Vec<IpAddr> = vec![
            IpAddr::from([127, 0, 0, 1]),
            config.advertise_address,
            IpAddr::V4(alloc.kubernetes_ip()),
        ];
        if !config.bind_address.is_unspecified() {
            ips.push(config.bind_address);
        }
        for san in &config.tls_sans {
            match san.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(san.clone()),
            }
        }
        ips.sort();
        ips.dedup();
        let pki = certs::ensure(&config.data_dir, &dns, &ips)?;
        let host = if config.bind_address.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            config.bind_address
        };
        let server_url = format!("https://{}", SocketAddr::new(host, local.port()));
        let kubeconfig = certs::write_admin_kubeconfig(&config.data_dir, &server_url)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca_cert.as_bytes()) {
            roots.add(c.map_err(tls_err)?).map_err(tls_err)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(tls_err)?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pki.serving_cert.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .map_err(tls_err)?;
        let key = PrivateKeyDer::from_pem_slice(pki.serving_key.as_bytes()).map_err(tls_err)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(tls_err)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let tokens = match &config.token_auth_file {
            Some(p) => TokenFile::load(p)?,
            None => TokenFile::default(),
        };
        let cache = crate::watchcache::WatchCache::new(Arc::clone(&store));
        let kubelet = crate::proxy::KubeletClient::new(
            &pki.ca_cert,
            &pki.kubelet_client_cert,
            &pki.kubelet_client_key,
        )?;
        let api = Arc::new(Api {
            store,
            alloc,
            bookmark_interval: config.bookmark_interval,
            cache,
            kubelet: Some(kubelet),
        });
        api.load_allocations().await?;
        bootstrap(&api, config.advertise_address, local.port()).await?;
        let server_address = SocketAddr::new(config.advertise_address, local.port()).to_string();
        Ok(Server {
            listener,
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            state: Arc::new(State {
                api,
                tokens,
                server_address,
            }),
            kubeconfig,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let compactor = tokio::spawn(compact_periodically(
            Arc::clone(&self.state.api.store),
            COMPACTION_INTERVAL,
        ));
        let result = self.accept_loop(shutdown).await;
        compactor.abort();
        result
    }

    async fn accept_loop(
        &self,
        mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<()> {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.tls.clone();
            let state = Arc::clone(&self.state);
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake");
                        return;
                    }
                    Err(_) => return,
                };
                let cert_user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| crate::auth::user_from_cert(c));
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    let user = cert_user.clone();
                    async move { Ok::<_, std::convert::Infallible>(state.serve(req, user).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                    tracing::debug!(%peer, error = %e, "connection");
                }
            });
        }
    }
}

impl State {
    async fn serve(
        &self,
        req: http::Request<hyper::body::Incoming>,
        cert_user: Option<User>,
    ) -> Response {
        let started = std::time::Instant::now();
        let (parts, body) = req.into_parts();
        let user = cert_user.or_else(|| {
            let auth = parts
                .headers
                .get(http::header::AUTHORIZATION)?
                .to_str()
                .ok()?;
            let token = auth.strip_prefix("Bearer ")?.trim();
            self.tokens.user(token).cloned()
        });
        let path = parts.uri.path().to_string();
        let route = request::route(&path);
        let public = matches!(route, Ok(Route::Health) | Ok(Route::Version));
        if user.is_none() && !public {
            return error_response(&ApiError::unauthorized());
        }
        // Bodies are bounded: a larger one is refused, not buffered.
        let limited = http_body_util::Limited::new(body, handlers::MAX_BODY + 1);
        let body: Bytes = match limited.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return error_response(&ApiError::too_large(handlers::MAX_BODY)),
        };
        if body.len() > handlers::MAX_BODY {
            return error_response(&ApiError::too_large(handlers::MAX_BODY));
        }
        let query = Query::parse(parts.uri.query());
        let resp = match route {
            Err(_) => error_response(&ApiError::no_route()),
            Ok(Route::Health) => text(StatusCode::OK, "ok"),
            Ok(Route::Metrics) => text(StatusCode::OK, ""),
            Ok(Route::Version) => value_response(StatusCode::OK, &discovery::version()),
            Ok(Route::CoreVersions) => value_response(
                StatusCode::OK,
                &discovery::core_versions(&self.server_address),
            ),
            Ok(Route::Groups) => value_response(StatusCode::OK, &discovery::groups()),
            Ok(Route::Group(g)) => match discovery::group(&g) {
                Some(v) => value_response(StatusCode::OK, &v),
                None => error_response(&ApiError::no_route()),
            },
            Ok(Route::ResourceList { group, version }) => {
                value_response(StatusCode::OK, &discovery::resource_list(&group, &version))
            }
            Ok(Route::OpenApiV3Index) => value_response(StatusCode::OK, &crate::openapi::v3_root()),
            Ok(Route::OpenApiV3 { group, version }) => {
                match crate::openapi::v3_group_version(&group, &version) {
                    Some(doc) => value_response(StatusCode::OK, &doc),
                    None => error_response(&ApiError::no_route()),
                }
            }
            Ok(Route::OpenApiV2) => error_response(&ApiError::no_route()),
            Ok(Route::Resource(target)) => {
                self.api
                    .handle(Request {
                        method: &parts.method,
                        target,
                        query: &query,
                        headers: &parts.headers,
                        body,
                    })
                    .await
            }
        };
        tracing::debug!(method = %parts.method, %path, status = resp.status().as_u16(), elapsed = ?started.elapsed(), "request");
        resp
    }
}

fn text(code: StatusCode, body: &'static str) -> Response {
    let b = http_body_util::Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut r = http::Response::new(b);
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// How often history is compacted, as upstream's `--etcd-compaction-interval` default.
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Every `interval`, forgets history older than the revision seen one interval earlier, so
/// watches can resume across a short disconnect while memory and disk stay bounded.
pub async fn compact_periodically(store: Arc<dyn Store>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    let mut previous: Option<crate::store::Revision> = None;
    loop {
        ticker.tick().await;
        if let Some(rev) = previous
            && let Err(e) = store.compact(rev).await
        {
            tracing::warn!(revision = rev, error = %e, "compaction failed");
        }
        previous = store.revision().await.ok();
    }
}

/// Creates what every cluster has if missing: the system namespaces and the `kubernetes`
/// Service with its Endpoints and EndpointSlice pointing at this server.
async fn bootstrap(api: &Arc<Api>, advertise: IpAddr, port: u16) -> Result<()> {
    async fn create(api: &Arc<Api>, kind: &str, ns: Option<&str>, obj: Value) {
        let Some(resource) = registry::RESOURCES.iter().find(|r| r.kind == kind) else {
            return;
        };
        let name = object::name(&obj).to_string();
        let key = resource.key(ns, &name);
        if let Ok(Some(kv)) = api.store.get(&key).await {
            // Keep the endpoints of the `kubernetes` Service pointing at this server.
            let Some(mut current) = crate::codec::decode(&kv.value, kv.mod_revision) else {
                return;
            };
            let mut changed = false;
            for field in ["subsets", "endpoints", "ports"] {
                if let Some(want) = obj.get(field)
                    && current.get(field) != Some(want)
                {
                    current[field] = want.clone();
                    changed = true;
                }
            }
            if changed {
                let bytes = crate::codec::encode(&current);
                if let Err(e) = api.store.update(&key, bytes, Some(kv.mod_revision)).await {
                    tracing::warn!(%key, error = %e, "updating bootstrap object");
                }
            }
            return;
        }
        let target = request::Target {
            resource,
            namespace: ns.map(String::from),
            name: None,
            subresource: None,
            watch_prefix: false,
        };
        let (query, headers) = (Query::default(), http::HeaderMap::new());
        let body = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
        let resp = api
            .handle(Request {
                method: &Method::POST,
                target,
                query: &query,
                headers: &headers,
                body,
            })
            .await;
        if !resp.status().is_success() && resp.status() != StatusCode::CONFLICT {
            tracing::warn!(kind, %name, status = resp.status().as_u16(), "bootstrap object not created");
        }
    }
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(
            api,
            "Namespace",
            None,
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }),
        )
        .await;
    }
    let ip = api.alloc.kubernetes_ip().to_string();
    create(
        api,
        "Service",
        Some("default"),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
            "spec": { "clusterIP": ip, "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": port }], "sessionAffinity": "None", "type": "ClusterIP" },
        }),
    )
    .await;
    create(
        api,
        "Endpoints",
        Some("default"),
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": { "name": "kubernetes", "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" } },
            "subsets": [{ "addresses": [{ "ip": advertise.to_string() }], "ports": [{ "name": "https", "port": port, "protocol": "TCP" }] }],
        }),
    )
    .await;
    create(
        api,
        "EndpointSlice",
        Some("default"),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": { "name": "kubernetes", "labels": { "kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io" } },
            "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{ "addresses": [advertise.to_string()], "conditions": { "ready": true } }],
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        }),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_is_compacted_one_interval_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            crate::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        let first = store
            .create("/c/a", b"1".to_vec())
            .await
            .unwrap()
            .mod_revision;
        store.update("/c/a", b"2".to_vec(), None).await.unwrap();
        let task = tokio::spawn(compact_periodically(
            Arc::clone(&store),
            Duration::from_millis(50),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        task.abort();
        let old = store.list("/c/", None, 0, Some(first)).await;
        assert!(
            matches!(old, Err(crate::store::StoreError::Compacted { .. })),
            "{old:?}"
        );
        assert_eq!(&*store.get("/c/a").await.unwrap().unwrap().value, b"2");
    }
}
