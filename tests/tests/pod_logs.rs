//! `kubectl logs` through `berth apiserver`: the apiserver finds the pod's node and streams
//! the logs from the kubelet endpoint in the Node's status. The kubelet here is a small
//! HTTPS server with a certificate from the cluster CA that serves `/containerLogs`.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tests::apiserver::TestApiserver;

/// Starts the fake kubelet on a free port; returns the port and the request log.
fn fake_kubelet(dir: &std::path::Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    let ca = apiserver::certs::Ca::from_pem(
        &std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(dir.join("ca.key")).unwrap(),
    )
    .unwrap();
    let (cert, key) = ca
        .sign(
            "kubelet",
            &[],
            true,
            &["localhost".into()],
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let log = Arc::clone(&log);
                            async move {
                                let uri = req.uri().to_string();
                                log.lock().unwrap().push(uri.clone());
                                let follow = uri.contains("follow=true");
                                let lines =
                                    futures_util::stream::iter(1..=3).then(move |i| async move {
                                        if follow {
                                            tokio::time::sleep(std::time::Duration::from_millis(
                                                100,
                                            ))
                                            .await;
                                        }
                                        Ok::<_, std::io::Error>(http_body::Frame::data(
                                            Bytes::from(format!("line {i}\n")),
                                        ))
                                    });
                                let body = BodyExt::boxed(http_body_util::StreamBody::new(lines));
                                Ok::<_, std::convert::Infallible>(http::Response::new(body))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    });
    (port, seen)
}

use futures_util::StreamExt;

#[test]
fn kubectl_logs_reach_the_kubelet_of_the_pods_node() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestApiserver::start_in(dir.path(), 0).unwrap();
    let (port, seen) = fake_kubelet(dir.path());

    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
    api.kubectl_ok(&["create", "-f", "-"], Some(node));
    let status = format!(
        r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
    );
    api.kubectl_ok(
        &[
            "patch",
            "node",
            "n1",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ],
        None,
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  nodeName: n1\n  containers:\n  - {name: app, image: busybox}\n  - {name: side, image: busybox}\n";
    api.kubectl_ok(&["create", "-f", "-"], Some(pod));

    let out = api.kubectl_ok(&["logs", "web", "-c", "app", "--tail=5"], None);
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    let out = api.kubectl_ok(&["logs", "-f", "web", "-c", "side"], None);
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests[0], "/containerLogs/default/web/app?tailLines=5");
    assert!(
        requests[1].starts_with("/containerLogs/default/web/side?follow=true"),
        "{requests:?}"
    );

    // A container that does not exist: the apiserver refuses, naming it.
    let out = api.kubectl(&["logs", "web", "-c", "nope"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{err}"
    );
}
