//! The etcd store against a real etcd (Debian's `etcd-server`, installed by `scripts/setup`):
//! the conformance suite, plus what only this backend has (key prefixes shared in one etcd,
//! etcd restarts and outages).
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::store::etcd::{EtcdOptions, EtcdStore};
use apiserver::store::{Event, Store, StoreError, conformance};
use futures_util::StreamExt;

/// One etcd process with its data directory; killed and waited for on drop, so a failing test
/// leaves no process behind.
struct Etcd {
    child: Child,
    client_port: u16,
    peer_port: u16,
    data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Etcd {
    /// Starts a fresh etcd on free ports and waits until it answers.
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut attempt = 0;
        loop {
            let (client_port, peer_port) = free_ports();
            // A fresh data directory per attempt: a member remembers its peer URL.
            let data = tmp.path().join(format!("data-{attempt}"));
            match Self::spawn(&data, client_port, peer_port).await {
                Ok(mut etcd) => {
                    etcd._tmp = Some(tmp);
                    return etcd;
                }
                // Another process took a port between the probe and etcd's bind: try others.
                Err(log) if attempt < 4 => eprintln!("etcd did not start, retrying: {log}"),
                Err(log) => panic!("etcd did not start:\n{log}"),
            }
            attempt += 1;
        }
    }

    /// Kills etcd and starts it again on the same data directory and ports.
    async fn restart(mut self) -> Self {
        self.stop();
        let tmp = self._tmp.take();
        let (data, client_port, peer_port) = (self.data.clone(), self.client_port, self.peer_port);
        drop(self);
        let mut etcd = Self::spawn(&data, client_port, peer_port)
            .await
            .unwrap_or_else(|log| panic!("etcd did not restart:\n{log}"));
        etcd._tmp = tmp;
        etcd
    }

    /// Spawns etcd on the data directory `data` and waits until it answers; on failure returns
    /// its log.
    async fn spawn(data: &Path, client_port: u16, peer_port: u16) -> Result<Self, String> {
        let log_path = data.with_extension(format!("{client_port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .arg("--name=default")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("running etcd (Debian package etcd-server; see scripts/setup): {e}")
            });
        let mut etcd = Etcd {
            child,
            client_port,
            peer_port,
            data: data.to_path_buf(),
            _tmp: None,
        };
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = etcd.child.try_wait().unwrap() {
                return Err(format!("etcd exited with {status}:\n{}", read_log()));
            }
            if TcpStream::connect(("127.0.0.1", client_port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                etcd.stop();
                return Err(format!("etcd did not listen within 30 s:\n{}", read_log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Listening comes before serving (the member elects itself first): wait for an answer.
        match EtcdStore::connect(&[etcd.endpoint()], "/").await {
            Ok(_) => Ok(etcd),
            Err(e) => {
                etcd.stop();
                Err(format!("etcd does not answer: {e}\n{}", read_log()))
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// SIGKILL, then reap.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two distinct free ports (bound to port 0, then released).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn unique_prefix() -> String {
    format!("/berth-test-{}", uuid::Uuid::new_v4().simple())
}

async fn connect(etcd: &Etcd, prefix: &str) -> Arc<EtcdStore> {
    EtcdStore::connect(&[etcd.endpoint()], prefix)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_shared_store() {
    let etcd = Etcd::start().await;
    let store: Arc<dyn Store> = connect(&etcd, &unique_prefix()).await;
    conformance::run_all(|| std::future::ready(store.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_store_per_case_with_empty_prefix() {
    // What the apiserver uses: no prefix (its keys already start with /registry/), a new
    // client per case, and unrelated keys in the same etcd.
    let etcd = Etcd::start().await;
    let other = connect(&etcd, "/unrelated").await;
    other.create("/x", b"not ours".to_vec()).await.unwrap();
    let endpoint = etcd.endpoint();
    conformance::run_all(|| {
        let endpoint = endpoint.clone();
        async move {
            let store: Arc<dyn Store> = EtcdStore::connect(&[endpoint], "").await.unwrap();
            store
        }
    })
    .await;
    assert_eq!(
        other.get("/x").await.unwrap().map(|kv| kv.value.to_vec()),
        Some(b"not ours".to_vec())
    );
}

#[tokio::test]
async fn conformance_on_a_single_thread_runtime() {
    let etcd = Etcd::start().await;
    let store: Arc<dyn Store> = connect(&etcd, &unique_prefix()).await;
    conformance::run_all(|| std::future::ready(store.clone())).await;
}

#[tokio::test]
async fn prefixes_isolate_stores_sharing_one_etcd() {
    let etcd = Etcd::start().await;
    let a = connect(&etcd, "/a").await;
    let b = connect(&etcd, "/b").await;
    let root = connect(&etcd, "").await;
    assert_eq!(a.prefix(), "/a");
    let r0 = a.revision().await.unwrap();
    let mut wa = a.watch("/", r0).await.unwrap();
    let mut wb = b.watch("", r0).await.unwrap();

    let ka = a.create("/k", b"a".to_vec()).await.unwrap();
    let kb = b.create("/k", b"b".to_vec()).await.unwrap();
    assert!(
        kb.mod_revision > ka.mod_revision,
        "one revision across prefixes"
    );
    assert_eq!(a.get("/k").await.unwrap(), Some(ka.clone()));
    assert_eq!(b.get("/k").await.unwrap(), Some(kb.clone()));
    assert_eq!(
        a.list("", None, 0, None).await.unwrap().items,
        vec![ka.clone()]
    );
    // The prefix is stripped on the way out, and nothing else is.
    let all: Vec<String> = root
        .list("/", None, 0, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(all, ["/a/k", "/b/k"]);
    assert_eq!(
        wa.next().await.unwrap().unwrap(),
        Event::Put { kv: ka, prev: None }
    );
    assert_eq!(
        wb.next().await.unwrap().unwrap(),
        Event::Put { kv: kb, prev: None }
    );
    assert!(matches!(
        b.create("/k", vec![]).await,
        Err(StoreError::AlreadyExists(_))
    ));
}

#[tokio::test]
async fn dropping_the_store_ends_watches() {
    let etcd = Etcd::start().await;
    let store = connect(&etcd, &unique_prefix()).await;
    let mut w = store.watch("/", 0).await.unwrap();
    store.create("/a", vec![]).await.unwrap();
    drop(store);
    let first = tokio::time::timeout(Duration::from_secs(10), w.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_))) | Ok(None)), "{first:?}");
    let end = tokio::time::timeout(Duration::from_secs(10), w.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_an_etcd_restart_and_revisions_continue() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix();
    let opts = EtcdOptions {
        request_timeout: Duration::from_secs(3),
        ..EtcdOptions::default()
    };
    let store = EtcdStore::connect_with(&[etcd.endpoint()], &prefix, opts)
        .await
        .unwrap();

    let r0 = store.revision().await.unwrap();
    let a1 = store.create("/a", b"1".to_vec()).await.unwrap();
    let b1 = store.create("/b", b"1".to_vec()).await.unwrap();
    let a2 = store.update("/a", b"2".to_vec(), None).await.unwrap();
    let (_, bdel) = store.delete("/b", None).await.unwrap();
    let c1 = store.create("/c", b"1".to_vec()).await.unwrap();
    let rev = store.revision().await.unwrap();
    assert_eq!(rev, c1.mod_revision);
    let before = store.list("/", None, 0, None).await.unwrap();
    let mut open_watch = store.watch("/", rev).await.unwrap();

    // kill -9: every acknowledged write must be on disk.
    let mut etcd = etcd;
    etcd.stop();
    // While etcd is down, calls fail with a backend error instead of hanging.
    match store.get("/a").await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("get while etcd is down: {other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(10), open_watch.next()).await {
        Ok(Some(Err(StoreError::Backend(_))) | None) => {}
        other => panic!("a watch across an etcd crash must end: {other:?}"),
    }
    let etcd = etcd.restart().await;

    let fresh = connect(&etcd, &prefix).await;
    assert_eq!(fresh.revision().await.unwrap(), rev);
    let mut after = fresh.list("/", None, 0, None).await.unwrap();
    assert_eq!(after.revision, rev);
    after.revision = before.revision;
    assert_eq!(after, before);
    // History survives too.
    let early = fresh
        .list("/", None, 0, Some(b1.mod_revision))
        .await
        .unwrap();
    assert_eq!(early.items, vec![a1.clone(), b1.clone()]);
    let mut w = fresh.watch("/", r0).await.unwrap();
    let want = [
        Event::Put {
            kv: a1.clone(),
            prev: None,
        },
        Event::Put {
            kv: b1.clone(),
            prev: None,
        },
        Event::Put {
            kv: a2.clone(),
            prev: Some(a1),
        },
        Event::Delete {
            prev: b1,
            revision: bdel,
        },
        Event::Put { kv: c1, prev: None },
    ];
    for (i, want) in want.iter().enumerate() {
        assert_eq!(&w.next().await.unwrap().unwrap(), want, "event {i}");
    }

    // The old client reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        match store.create("/d", b"1".to_vec()).await {
            Ok(kv) => break kv,
            Err(StoreError::Backend(e)) if Instant::now() < deadline => {
                eprintln!("waiting for the old client to reconnect: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("old client after the restart: {e}"),
        }
    };
    assert_eq!(
        next.mod_revision,
        rev + 1,
        "revisions continue, never reused"
    );
    assert_eq!(
        w.next().await.unwrap().unwrap(),
        Event::Put {
            kv: next,
            prev: None
        }
    );
    let a3 = store
        .update("/a", b"3".to_vec(), Some(a2.mod_revision))
        .await
        .unwrap();
    assert_eq!(a3.create_revision, a2.create_revision);
}

#[tokio::test]
async fn connecting_to_nothing_fails() {
    let (port, _) = free_ports();
    let opts = EtcdOptions {
        request_timeout: Duration::from_secs(3),
        dial_timeout: Duration::from_secs(1),
    };
    let started = Instant::now();
    match EtcdStore::connect_with(&[format!("127.0.0.1:{port}")], "", opts).await {
        Err(StoreError::Backend(msg)) => assert!(msg.contains(&port.to_string()), "{msg}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        EtcdStore::connect(&[], "").await,
        Err(StoreError::Backend(_))
    ));
}
