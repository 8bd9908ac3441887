//! `berth scheduler` and `berth controller-manager`: flags (upstream names), leader
//! election, the health/metrics endpoint, and the control loops from their crates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;

/// Flags every control-plane daemon shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// kubeconfig with the API server address and credentials.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Elect a leader through a Lease in kube-system before acting (for several instances).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Address for /healthz, /readyz and /metrics (plain HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
}

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    common: Common,
    /// Port for /healthz and /metrics.
    #[arg(long, default_value_t = 10259)]
    secure_port: u16,
    /// Schedule pods whose spec.schedulerName is this.
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
}

pub fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    crate::runtime()?.block_on(async move {
        let client = daemon::client(args.common.kubeconfig.as_deref())
            .await
            .context("building the API client")?;
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = scheduler::run::Metrics::register(&mut registry);
        let health = daemon::health::Health::new(registry);
        let addr = daemon::health::serve(
            SocketAddr::new(args.common.bind_address, args.secure_port),
            health.clone(),
        )
        .await?;
        eprintln!("berth scheduler: health and metrics on http://{addr}");
        let opts = scheduler::run::Options {
            scheduler_name: args.scheduler_name,
        };
        let work = async {
            health.set_ready(true);
            scheduler::run::run(client.clone(), opts, metrics).await;
        };
        lead_or_run(
            client.clone(),
            args.common.leader_elect,
            "kube-scheduler",
            work,
        )
        .await
    })
}

/// Runs `work` under leader election (or directly), until SIGTERM/SIGINT.
pub async fn lead_or_run(
    client: kube::Client,
    leader_elect: bool,
    lease: &str,
    work: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let run = async {
        if leader_elect {
            daemon::leader::run_as_leader(client, daemon::leader::LeaderConfig::new(lease), work)
                .await
        } else {
            work.await;
            Ok(())
        }
    };
    tokio::select! {
        r = run => r.map_err(Into::into),
        _ = daemon::shutdown_signal() => Ok(()),
    }
}
