//! `berth apiserver`: flags (upstream names) and start-up.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use apiserver::alloc::Cidr;
use apiserver::server::{Config, Server};
use apiserver::store::Store;

/// Storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded crash-safe store in --data-dir (default).
    Embedded,
    /// etcd v3 at --etcd-servers.
    Etcd3,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to serve HTTPS on.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Address published in the `kubernetes` Service endpoints (default: --bind-address, or
    /// 127.0.0.1 when that is unspecified).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Directory for certificates, the admin kubeconfig and the embedded store.
    #[arg(long, default_value = "/var/lib/berth/apiserver")]
    data_dir: PathBuf,
    /// Bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// CIDR that Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cidr)]
    service_cluster_ip_range: Cidr,
    /// NodePort range, `LOW-HIGH` inclusive.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// Storage backend.
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    storage_backend: Backend,
    /// etcd endpoints for --storage-backend etcd3, comma-separated.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Extra subject alternative names (DNS names or IPs) for the serving certificate.
    #[arg(long, value_delimiter = ',')]
    tls_san: Vec<String>,
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a port range (LOW-HIGH)"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: bad low port"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: bad high port"))?;
    if lo == 0 || lo > hi {
        return Err(format!("{s:?}: need 0 < LOW <= HIGH"));
    }
    Ok((lo, hi))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::runtime()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = match args.storage_backend {
        Backend::Embedded => {
            let dir = args.data_dir.join("store");
            apiserver::store::embedded::EmbeddedStore::open(&dir)
                .with_context(|| format!("opening the embedded store in {}", dir.display()))?
        }
        Backend::Etcd3 => {
            anyhow::ensure!(
                !args.etcd_servers.is_empty(),
                "--storage-backend etcd3 needs --etcd-servers"
            );
            apiserver::store::etcd::EtcdStore::connect(&args.etcd_servers, "")
                .await
                .with_context(|| format!("connecting to etcd at {}", args.etcd_servers.join(",")))?
        }
    };
    let mut config = Config::new(&args.data_dir);
    config.secure_port = args.secure_port;
    config.bind_address = args.bind_address;
    config.advertise_address =
        args.advertise_address
            .unwrap_or(if args.bind_address.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                args.bind_address
            });
    config.token_auth_file = args.token_auth_file;
    config.service_cluster_ip_range = args.service_cluster_ip_range;
    config.service_node_port_range = args.service_node_port_range;
    config.tls_sans = args.tls_san;
    let server = Server::bind(config, store)
        .await
        .context("starting the apiserver")?;
    eprintln!(
        "berth apiserver listening on https://{}",
        server.local_addr()
    );
    eprintln!("admin kubeconfig: {}", server.kubeconfig.display());
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse() {
        assert_eq!(parse_port_range("30000-32767"), Ok((30000, 32767)));
        assert!(parse_port_range("5-1").is_err());
        assert!(parse_port_range("x").is_err());
    }
}
