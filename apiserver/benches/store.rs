//! Throughput of the embedded store: creates per second with 1, 4, 16 and 64 concurrent
//! writers, each write durable (group commit, one `fdatasync` per batch).
//!
//! `cargo bench -p apiserver --bench store`; `BERTH_BENCH_DIR` picks the disk (default: the
//! system temp dir).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::store::Store;
use apiserver::store::embedded::EmbeddedStore;

const RUN: Duration = Duration::from_secs(3);

async fn creates_per_second(store: Arc<EmbeddedStore>, writers: usize) -> (f64, usize) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let value = vec![b'x'; 1024];
                let mut n = 0usize;
                while start.elapsed() < RUN {
                    store
                        .create(&format!("/bench/{writers}/{w}/{n}"), value.clone())
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    (total as f64 / start.elapsed().as_secs_f64(), total)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run briefly.
    let base = std::env::var_os("BERTH_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match base {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for writers in [1, 4, 16, 64] {
            let path = dir.path().join(format!("w{writers}"));
            let store = EmbeddedStore::open(&path).unwrap();
            let (rate, total) = creates_per_second(store, writers).await;
            println!("embedded store: {writers:>2} writers: {rate:>8.0} creates/s ({total} in {RUN:?}, 1 KiB values)");
        }
    });
}
