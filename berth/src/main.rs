//! `berth`: one command for every berth component. Argument parsing and dispatch only; the
//! work lives in the library crates.

mod apiserver;
mod bench;
mod daemons;
mod image;

use clap::{Parser, Subcommand};

/// A Kubernetes worker node and the small control plane it needs to stand on its own.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
struct Cli {
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `node=debug`.
    #[arg(long, global = true, env = "BERTH_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control loops (endpointslices, replicasets, deployments, node lifecycle and
    /// IPAM, service accounts).
    ControllerManager(daemons::ControllerManagerArgs),
    /// Run the pods bound to this node through a CRI runtime and report node and pod status.
    Kubelet(daemons::KubeletArgs),
    /// Assign pods to nodes (filters, scores, back-off, events).
    Scheduler(daemons::SchedulerArgs),
    /// Build local OCI images and import them into containerd (no registry needed).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Serve the Kubernetes API (HTTPS on --secure-port) from the embedded store or etcd.
    Apiserver(apiserver::Args),
    /// Measure berth's components against their limits.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Apiserver(args) => apiserver::run(args),
        Command::Image(cmd) => image::run(cmd),
        Command::Kubelet(args) => daemons::kubelet(args),
        Command::Scheduler(args) => daemons::scheduler(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::ControllerManager(args) => daemons::controller_manager(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime for the subcommands that need one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
