//! `cargo bench -p tests --bench apiserver`: the apiserver's throughput and latency on the
//! embedded store and on etcd, side by side in one run, each figure beside its target.
//! Uses the real HTTPS server and a kube-rs client, as controllers will.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use tests::apiserver::{Backend, TestApiserver};

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "bench" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox:1.35", "command": ["sleep", "3600"],
                   "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } }] },
    }))
    .expect("valid pod")
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Creates `total` pods in `ns` with `workers` concurrent clients; returns creates/s.
async fn creates_per_second(
    client: &kube::Client,
    ns: &str,
    prefix: &str,
    total: usize,
    workers: usize,
) -> anyhow::Result<f64> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (pods, next, prefix) = (pods.clone(), next.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                pods.create(&PostParams::default(), &pod(&format!("{prefix}-{i}")))
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Open-loop creates at `rate`/s for `count` requests; returns each latency.
async fn paced_latency(
    client: &kube::Client,
    ns: &str,
    rate: u32,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        ticker.tick().await;
        let pods = pods.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            pods.create(&PostParams::default(), &pod(&format!("paced-{i}")))
                .await?;
            anyhow::Ok(t.elapsed())
        }));
    }
    let mut out = Vec::with_capacity(count);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// Times full lists of `ns` (raw bytes, no client-side decoding).
async fn list_time(
    client: &kube::Client,
    ns: &str,
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let req = http::Request::get(format!("/api/v1/namespaces/{ns}/pods")).body(Vec::new())?;
        let t = Instant::now();
        let body = client.request_text(req).await?;
        times.push(t.elapsed());
        bytes = body.len();
    }
    Ok((times, bytes))
}

/// `watchers` watches on ConfigMaps; `events` creates; latency from create call to arrival.
async fn watch_latency(
    client: &kube::Client,
    ns: &str,
    watchers: usize,
    events: usize,
) -> anyhow::Result<Vec<Duration>> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>> =
        Default::default();
    let rv = cms
        .list_metadata(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (cms, sent, rv) = (cms.clone(), sent.clone(), rv.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = cms
                .watch(&WatchParams::default().timeout(120), &rv)
                .await?
                .boxed();
            let mut lat = Vec::with_capacity(events);
            while lat.len() < events {
                match stream.next().await {
                    Some(Ok(WatchEvent::Added(cm))) => {
                        let now = Instant::now();
                        let name = cm.metadata.name.unwrap_or_default();
                        if let Some(t) = sent
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .get(&name)
                        {
                            lat.push(now - *t);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => anyhow::bail!("watch: {e}"),
                    None => anyhow::bail!("watch ended early"),
                }
            }
            anyhow::Ok(lat)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..events {
        let name = format!("w-{i}");
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({ "metadata": { "name": name }, "data": { "k": "v" } }),
        )?;
        sent.lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(name, Instant::now());
        cms.create(&PostParams::default(), &cm).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(tokio::time::timeout(Duration::from_secs(60), t).await???);
    }
    Ok(all)
}

struct Figures {
    c1: f64,
    c16: f64,
    p50: Duration,
    p99: Duration,
    list_p50: Duration,
    list_bytes: usize,
    w50: Duration,
    w99: Duration,
}

async fn measure(label: &str, backend: Backend) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let server = TestApiserver::start_with(dir.path(), 0, backend)?;
    let client = server.client().await?;
    eprintln!("[{label}] creates with 1 client...");
    namespace(&client, "b1").await?;
    let c1 = creates_per_second(&client, "b1", "one", 1000, 1).await?;
    eprintln!("[{label}] creates with 16 clients...");
    namespace(&client, "b16").await?;
    let c16 = creates_per_second(&client, "b16", "many", 4000, 16).await?;
    eprintln!("[{label}] paced creates at 100/s...");
    namespace(&client, "paced").await?;
    let mut lat = paced_latency(&client, "paced", 100, 1000).await?;
    eprintln!("[{label}] filling 10,000 pods for the list...");
    namespace(&client, "list").await?;
    creates_per_second(&client, "list", "l", 10_000, 16).await?;
    let (mut lists, list_bytes) = list_time(&client, "list", 7).await?;
    eprintln!("[{label}] watch latency to 100 watchers...");
    namespace(&client, "watch").await?;
    let mut w = watch_latency(&client, "watch", 100, 50).await?;
    drop(client);
    server.stop();
    Ok(Figures {
        c1,
        c16,
        p50: pct(&mut lat, 50.0),
        p99: pct(&mut lat, 99.0),
        list_p50: pct(&mut lists, 50.0),
        list_bytes,
        w50: pct(&mut w, 50.0),
        w99: pct(&mut w, 99.0),
    })
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probing
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let embedded = measure("embedded", Backend::Embedded).await?;
        let etcd_proc = tests::etcd::TestEtcd::start()?;
        let etcd = measure("etcd", Backend::Etcd(etcd_proc.url.clone())).await?;
        drop(etcd_proc);
        println!("apiserver benchmark (kube-rs client, HTTPS, same 2-core machine as the server)");
        println!(
            "{:<40} {:>14} {:>14} {:>22}",
            "figure", "embedded", "etcd", "target (embedded)"
        );
        let row = |name: &str, a: String, b: String, target: &str| {
            println!("{name:<40} {a:>14} {b:>14} {target:>22}")
        };
        row(
            "creates/s, 1 client",
            format!("{:.0}", embedded.c1),
            format!("{:.0}", etcd.c1),
            "-",
        );
        row(
            "creates/s, 16 clients",
            format!("{:.0}", embedded.c16),
            format!("{:.0}", etcd.c16),
            &format!(">= 3000 ({:.2}x)", embedded.c16 / 3000.0),
        );
        row(
            "create latency at 100/s, p50 (ms)",
            format!("{:.2}", ms(embedded.p50)),
            format!("{:.2}", ms(etcd.p50)),
            "-",
        );
        row(
            "create latency at 100/s, p99 (ms)",
            format!("{:.2}", ms(embedded.p99)),
            format!("{:.2}", ms(etcd.p99)),
            &format!("< 50 ({:.2}x)", ms(embedded.p99) / 50.0),
        );
        row(
            "list 10,000 pods, p50 of 7 (ms)",
            format!("{:.1}", ms(embedded.list_p50)),
            format!("{:.1}", ms(etcd.list_p50)),
            &format!("< 200 ({:.2}x)", ms(embedded.list_p50) / 200.0),
        );
        row(
            "  list body size (MB)",
            format!("{:.1}", embedded.list_bytes as f64 / 1e6),
            format!("{:.1}", etcd.list_bytes as f64 / 1e6),
            "-",
        );
        row(
            "watch delivery, 100 watchers, p50 (ms)",
            format!("{:.2}", ms(embedded.w50)),
            format!("{:.2}", ms(etcd.w50)),
            "-",
        );
        row(
            "watch delivery, 100 watchers, p99 (ms)",
            format!("{:.2}", ms(embedded.w99)),
            format!("{:.2}", ms(etcd.w99)),
            "-",
        );
        anyhow::Ok(())
    })
}
