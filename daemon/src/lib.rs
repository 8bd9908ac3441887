//! What every berth daemon (scheduler, controller-manager, kubelet, proxy) shares: a kube-rs
//! client built from `--kubeconfig`, leader election through a coordination.k8s.io Lease, and
//! the HTTP endpoint serving `/healthz` and Prometheus `/metrics`.

pub mod events;
pub mod health;
pub mod leader;

use std::path::Path;

/// A failure of the shared daemon machinery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or using the kubeconfig failed.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Serving the health endpoint failed.
    #[error("serving {addr}: {source}")]
    Serve {
        addr: String,
        source: std::io::Error,
    },
    /// Leadership was lost; the daemon must stop acting.
    #[error("leader election lost: {0}")]
    LostLease(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client from a kubeconfig file, or from the environment when `path` is None
/// (`$KUBECONFIG`, `~/.kube/config`, or in-cluster).
pub async fn client(path: Option<&Path>) -> Result<kube::Client> {
    let config = match path {
        Some(p) => {
            let err = |message: String| Error::Kubeconfig {
                path: p.display().to_string(),
                message,
            };
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| err(e.to_string()))?
        }
        None => kube::Config::infer().await.map_err(|e| Error::Kubeconfig {
            path: "<inferred>".into(),
            message: e.to_string(),
        })?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Resolves when the process gets SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
