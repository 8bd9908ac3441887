//! The embedded store: the conformance suite, plus durability and recovery tests that only
//! make sense for it (reopen, torn and corrupt logs, snapshots, `kill -9`, slow watchers).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore, SNAPSHOT_FILE, WAL_FILE};
use apiserver::store::{Event, ListResult, Store, StoreError, conformance};
use futures_util::StreamExt;

fn open(dir: &Path) -> Arc<EmbeddedStore> {
    EmbeddedStore::open(dir).unwrap()
}

async fn list_all(store: &EmbeddedStore) -> ListResult {
    store.list("/", None, 0, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_fresh_store_per_case() {
    let mut dirs = Vec::new();
    conformance::run_all(move || {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = open(dir.path());
        dirs.push(dir);
        std::future::ready(store)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_shared_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = open(dir.path());
    conformance::run_all(|| std::future::ready(store.clone())).await;
}

#[tokio::test]
async fn conformance_on_a_single_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = open(dir.path());
    conformance::run_all(|| std::future::ready(store.clone())).await;
}

/// Writes a mix of creates, updates and deletes; returns the revision after them.
async fn write_mix(store: &EmbeddedStore, n: usize) -> i64 {
    for i in 0..n {
        store
            .create(&format!("/mix/{i:04}"), format!("value {i}").into_bytes())
            .await
            .unwrap();
    }
    for i in (0..n).step_by(3) {
        store
            .update(
                &format!("/mix/{i:04}"),
                format!("updated {i}").into_bytes(),
                None,
            )
            .await
            .unwrap();
    }
    for i in (0..n).step_by(5) {
        store.delete(&format!("/mix/{i:04}"), None).await.unwrap();
    }
    store.revision().await.unwrap()
}

#[tokio::test]
async fn reopen_keeps_every_key_and_revisions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (before, rev) = {
        let store = open(dir.path());
        let rev = write_mix(&store, 60).await;
        (list_all(&store).await, rev)
    };
    let store = open(dir.path());
    assert_eq!(store.revision().await.unwrap(), rev);
    assert_eq!(list_all(&store).await, before);
    // History is kept too: a list at an old revision and a watch from the start still work.
    let early = store.list("/", None, 0, Some(10)).await.unwrap();
    assert_eq!(early.items.len(), 10);
    let mut w = store.watch("/", 0).await.unwrap();
    let first = w.next().await.unwrap().unwrap();
    assert_eq!((first.key(), first.revision()), ("/mix/0000", 1));
    let next = store.create("/after/reopen", vec![]).await.unwrap();
    assert_eq!(
        next.mod_revision,
        rev + 1,
        "revisions continue, never reused"
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.get("/after/reopen").await.unwrap(), Some(next));
}

#[tokio::test]
async fn torn_last_record_is_dropped_and_earlier_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join(WAL_FILE);
    {
        let store = open(dir.path());
        for i in 0..20 {
            store
                .create(&format!("/k/{i:02}"), vec![b'x'; 100])
                .await
                .unwrap();
        }
    }
    // A crash in the middle of the last write: only part of its frame reached the disk.
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    {
        let store = open(dir.path());
        let items = list_all(&store).await.items;
        assert_eq!(items.len(), 19);
        assert_eq!(items.last().unwrap().key, "/k/18");
        assert_eq!(store.revision().await.unwrap(), 19);
        let again = store.create("/k/19", b"again".to_vec()).await.unwrap();
        assert_eq!(again.mod_revision, 20);
    }
    // Garbage after the last frame (a torn write that extended the file): also dropped.
    let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
    f.write_all(&[0u8; 3000]).unwrap();
    f.write_all(b"\x10\x00\x00\x00garbage that is not a frame")
        .unwrap();
    drop(f);
    let store = open(dir.path());
    let items = list_all(&store).await.items;
    assert_eq!(items.len(), 20);
    assert_eq!(&*items[19].value, b"again");
    store.create("/k/20", vec![]).await.unwrap();
    drop(store);
    assert_eq!(
        list_all(&open(dir.path())).await.items.len(),
        21,
        "the log was repaired"
    );
}

#[tokio::test]
async fn corruption_in_the_middle_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join(WAL_FILE);
    {
        let store = open(dir.path());
        for i in 0..20 {
            store
                .create(&format!("/k/{i:02}"), vec![b'x'; 100])
                .await
                .unwrap();
        }
    }
    let mut data = std::fs::read(&wal).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    std::fs::write(&wal, &data).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("corrupt"), "{msg}"),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[tokio::test]
async fn snapshot_and_log_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EmbeddedOptions {
        snapshot_log_bytes: 4096,
        ..EmbeddedOptions::default()
    };
    let (before, rev, events) = {
        let store = EmbeddedStore::open_with(dir.path(), opts.clone()).unwrap();
        let rev = write_mix(&store, 300).await;
        let mut w = store.watch("/", 0).await.unwrap();
        let mut events = Vec::new();
        for _ in 0..rev {
            events.push(w.next().await.unwrap().unwrap());
        }
        (list_all(&store).await, rev, events)
    };
    assert!(
        dir.path().join(SNAPSHOT_FILE).exists(),
        "the log outgrew its threshold"
    );
    // The log is cut once it outgrows the threshold or the snapshot, whichever is larger.
    let wal_len = std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len();
    let snapshot_len = std::fs::metadata(dir.path().join(SNAPSHOT_FILE))
        .unwrap()
        .len();
    assert!(
        wal_len < snapshot_len.max(4096) + 200,
        "log {wal_len} bytes, snapshot {snapshot_len}"
    );

    let store = EmbeddedStore::open_with(dir.path(), opts).unwrap();
    assert_eq!(store.revision().await.unwrap(), rev);
    assert_eq!(list_all(&store).await, before);
    // Snapshot + log keep the whole history since the compaction point.
    let mut w = store.watch("/", 0).await.unwrap();
    for (i, want) in events.iter().enumerate() {
        assert_eq!(&w.next().await.unwrap().unwrap(), want, "event {i}");
    }
    let next = store.create("/next", vec![]).await.unwrap();
    assert_eq!(next.mod_revision, rev + 1);
}

#[tokio::test]
async fn compaction_is_persistent() {
    let dir = tempfile::tempdir().unwrap();
    let (before, rev) = {
        let store = open(dir.path());
        let rev = write_mix(&store, 50).await;
        store.compact(rev - 5).await.unwrap();
        assert_eq!(store.compacted(), rev - 5);
        (list_all(&store).await, rev)
    };
    let store = open(dir.path());
    assert_eq!(store.compacted(), rev - 5);
    assert_eq!(store.revision().await.unwrap(), rev);
    assert_eq!(list_all(&store).await, before);
    assert!(matches!(
        store.list("/", None, 0, Some(rev - 6)).await,
        Err(StoreError::Compacted { requested, compacted }) if requested == rev - 6 && compacted == rev - 5
    ));
    assert!(matches!(
        store.watch("/", rev - 6).await,
        Err(StoreError::Compacted { .. })
    ));
    store.list("/", None, 0, Some(rev - 5)).await.unwrap();
    let mut w = store.watch("/", rev - 5).await.unwrap();
    for r in rev - 4..=rev {
        assert_eq!(w.next().await.unwrap().unwrap().revision(), r);
    }
    assert!(matches!(
        store.compact(rev + 100).await,
        Err(StoreError::FutureRevision { .. })
    ));
    assert_eq!(
        store.create("/new", vec![]).await.unwrap().mod_revision,
        rev + 1
    );
}

#[tokio::test]
async fn crash_between_snapshot_and_log_truncation_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join(WAL_FILE);
    {
        let store = open(dir.path());
        write_mix(&store, 30).await;
    }
    let old_log = std::fs::read(&wal).unwrap();
    let (before, rev) = {
        let store = open(dir.path());
        let rev = store.revision().await.unwrap();
        store.compact(rev).await.unwrap();
        (list_all(&store).await, rev)
    };
    // As if the crash came after the snapshot's rename but before the log was truncated.
    std::fs::write(&wal, old_log).unwrap();
    let store = open(dir.path());
    assert_eq!(store.revision().await.unwrap(), rev);
    assert_eq!(list_all(&store).await, before);
    assert_eq!(
        store.create("/new", vec![]).await.unwrap().mod_revision,
        rev + 1
    );
}

#[tokio::test]
async fn slow_watcher_is_cut_off_without_blocking_writers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EmbeddedOptions {
        watch_backlog: 16,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), opts).unwrap();
    let mut slow = store.watch("/", 0).await.unwrap();
    let mut other = store.watch("/other/", 0).await.unwrap();
    let writes = async {
        for i in 0..100 {
            store.create(&format!("/k/{i:03}"), vec![]).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), writes)
        .await
        .expect("writers never wait");
    for i in 0..16 {
        let event = slow.next().await.unwrap().unwrap();
        assert_eq!(event.key(), format!("/k/{i:03}"));
    }
    match slow.next().await {
        Some(Err(StoreError::Compacted {
            requested,
            compacted,
        })) => {
            assert_eq!((requested, compacted), (16, 17));
        }
        other => panic!("expected a final error, got {other:?}"),
    }
    assert!(
        slow.next().await.is_none(),
        "the stream ends after the error"
    );
    // A watcher of an idle prefix is unaffected.
    let kv = store.create("/other/x", vec![]).await.unwrap();
    assert_eq!(
        other.next().await.unwrap().unwrap(),
        Event::Put { kv, prev: None }
    );
}

#[tokio::test]
async fn dropping_the_store_ends_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut w = store.watch("/", 0).await.unwrap();
    store.create("/a", vec![]).await.unwrap();
    drop(store);
    assert!(w.next().await.unwrap().is_ok());
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn a_data_dir_is_opened_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("in use"), "{msg}"),
        other => panic!("expected the data dir to be locked, got {other:?}"),
    }
    drop(store);
    open(dir.path());
}

const CRASH_CHILD_DIR: &str = "BERTH_STORE_CRASH_CHILD_DIR";

/// Writer mode of [`acknowledged_writes_survive_sigkill`]: a no-op unless the parent set
/// [`CRASH_CHILD_DIR`]. Writes keys from 8 tasks and prints each one once it is acknowledged.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = open(Path::new(&dir));
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        if Instant::now() > deadline {
                            break;
                        }
                        let key = format!("/crash/{t}/{i}");
                        let kv = store
                            .create(&key, key.repeat(8).into_bytes())
                            .await
                            .unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "acked {key} {}", kv.mod_revision).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // Only whole lines: the kill may cut the last one short.
        let Some(rest) = line
            .strip_suffix('\n')
            .and_then(|l| l.strip_prefix("acked "))
        else {
            continue;
        };
        let (key, rev) = rest.split_once(' ').unwrap();
        acked.push((key.to_string(), rev.parse::<i64>().unwrap()));
        if acked.len() == 2000 && !killed {
            child.kill().unwrap(); // SIGKILL, mid-stream
            killed = true;
        }
    }
    child.wait().unwrap();
    assert!(
        killed,
        "the child stopped early after {} writes",
        acked.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = open(dir.path());
        let rev = store.revision().await.unwrap();
        for (key, mod_revision) in &acked {
            let kv = store.get(key).await.unwrap();
            let kv = kv.unwrap_or_else(|| panic!("acknowledged {key} lost"));
            assert_eq!(kv.mod_revision, *mod_revision);
            assert_eq!(&*kv.value, key.repeat(8).as_bytes());
            assert!(rev >= *mod_revision);
        }
        let next = store.create("/after/crash", vec![]).await.unwrap();
        assert_eq!(next.mod_revision, rev + 1);
    });
}
