//! `cargo bench -p tests --bench scheduler`: like upstream's scheduler_perf SchedulingBasic
//! (5,000 nodes, 10,000 pods), through the real apiserver (embedded store): creates the
//! nodes and the pending pods, starts the scheduler and measures pods bound per second;
//! then the time for the ReplicaSet controller to create 1,000 pods.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tests::apiserver::TestApiserver;

const NODES: usize = 5000;
const PODS: usize = 10_000;
const RS_PODS: i32 = 1000;

async fn parallel<F, Fut>(total: usize, workers: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                f(i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Counts pods (in `ns`, or all) for which `pred` holds, from a watch, until `target`.
fn count_until(
    client: kube::Client,
    pred: fn(&Pod) -> bool,
    target: usize,
) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut seen = std::collections::HashSet::new();
        let mut stream = watcher(Api::<Pod>::all(client), watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let pods = match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => vec![p],
                _ => continue,
            };
            for p in pods {
                if pred(&p) {
                    seen.insert(p.metadata.name.clone().unwrap_or_default());
                }
            }
            if seen.len() >= target {
                break;
            }
        }
        start.elapsed()
    })
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let server = TestApiserver::start_in(dir.path(), 0)?;
        let client = server.client().await?;
        eprintln!("creating {NODES} nodes...");
        let c = client.clone();
        parallel(NODES, 16, move |i| {
            let c = c.clone();
            async move {
                let nodes: Api<Node> = Api::all(c);
                let name = format!("node-{i}");
                let n: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
                nodes.create(&PostParams::default(), &n).await?;
                let status = json!({"status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                    "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}]}});
                nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
                Ok(())
            }
        })
        .await?;
        eprintln!("creating {PODS} pending pods...");
        let c = client.clone();
        parallel(PODS, 16, move |i| {
            let c = c.clone();
            async move {
                let pods: Api<Pod> = Api::namespaced(c, "default");
                let p: Pod = serde_json::from_value(json!({"metadata": {"name": format!("pod-{i}")}, "spec": {"containers": [{
                    "name": "c", "image": "registry.k8s.io/pause:3.9", "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}}))?;
                pods.create(&PostParams::default(), &p).await?;
                Ok(())
            }
        })
        .await?;
        eprintln!("scheduling...");
        let bound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        let counter = count_until(client.clone(), bound, PODS);
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = scheduler::run::Metrics::register(&mut registry);
        let started = Instant::now();
        let sched = tokio::spawn(scheduler::run::run(client.clone(), Default::default(), metrics));
        let _ = counter.await?;
        let schedule_time = started.elapsed();
        let rate = PODS as f64 / schedule_time.as_secs_f64();

        eprintln!("ReplicaSet of {RS_PODS}...");
        let cm = tokio::spawn(controllers::run::run(client.clone(), Default::default()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let owned = |p: &Pod| p.metadata.labels.as_ref().is_some_and(|l| l.get("app").map(String::as_str) == Some("rs-bench"));
        let counter = count_until(client.clone(), owned, RS_PODS as usize);
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs-bench"}, "spec": {"replicas": RS_PODS,
            "selector": {"matchLabels": {"app": "rs-bench"}},
            "template": {"metadata": {"labels": {"app": "rs-bench"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))?;
        let t = Instant::now();
        Api::<ReplicaSet>::namespaced(client.clone(), "default").create(&PostParams::default(), &rs).await?;
        let _ = counter.await?;
        let rs_time = t.elapsed();
        sched.abort();
        cm.abort();
        drop(client);
        server.stop();

        println!("scheduler benchmark (SchedulingBasic shape: {NODES} nodes, {PODS} pods, binds through the apiserver)");
        println!("  pods bound per second   {rate:8.0}   target >= 1000 ({:.2}x); upstream CI floor 270 ({:.2}x)", rate / 1000.0, rate / 270.0);
        println!("  time to bind all pods   {:8.2} s", schedule_time.as_secs_f64());
        println!("  ReplicaSet controller: {RS_PODS} pods created in {:.2} s ({:.0} pods/s)", rs_time.as_secs_f64(), f64::from(RS_PODS) / rs_time.as_secs_f64());
        anyhow::Ok(())
    })
}
