//! `berth bench ...`: benchmarks that print each figure beside its limit.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use node::bench::percentile;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Raw CRI pod start (RunPodSandbox -> container Running) against a private containerd
    /// in its own network namespace: the limit the kubelet's pod start is compared to.
    Cri {
        /// Pods to start, one after another.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
        pods: u32,
        /// Directory for the bench node's containerd (removed afterwards).
        #[arg(long, default_value = "/tmp/berth-bench")]
        dir: PathBuf,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Cri { pods, dir } => crate::runtime()?.block_on(cri(pods as usize, dir)),
    }
}

async fn cri(pods: usize, dir: PathBuf) -> anyhow::Result<()> {
    let name = format!("berth-bench-{}", std::process::id());
    node::local::remove_stale(&name, &dir);
    eprintln!("starting a node ({name}: netns, containerd, local images)...");
    let config = node::LocalNodeConfig {
        name,
        dir: dir.clone(),
        pod_subnet: "10.88.0.0/22".into(),
    };
    let node = node::LocalNode::start(config)
        .await
        .context("starting the bench node")?;
    let runtime = node
        .cri()
        .version()
        .await
        .map(|v| format!("{} {}", v.runtime_name, v.runtime_version));
    let result = node::bench::cri_pod_start(&node, pods, |i, d| {
        eprint!("\rpod {}/{pods}: {:.1} ms   ", i + 1, d.as_secs_f64() * 1e3);
    })
    .await;
    eprintln!();
    node.stop().await.context("stopping the bench node")?;
    let (r, runtime) = (result?, runtime?);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!("raw CRI pod start over {pods} pods ({runtime}):");
    println!(
        "  RunPodSandbox -> Running  p50 {:7.1} ms  p99 {:7.1} ms",
        ms(percentile(&r.total, 50.0)),
        ms(percentile(&r.total, 99.0))
    );
    for (label, v) in [
        ("RunPodSandbox", &r.run_sandbox),
        ("CreateContainer", &r.create),
        ("StartContainer", &r.start),
    ] {
        println!(
            "  {label:<24} p50 {:7.1} ms  p99 {:7.1} ms",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0))
        );
    }
    Ok(())
}
