//! The conformance suite every [`Store`] implementation must pass.
//!
//! [`run_all`] runs every [`Case`] in turn; each case works under its own unique key prefix
//! (`/conformance/<run id>/<case>/`), so the cases run equally against a fresh store per case
//! or one shared store, including an etcd that holds other data. Assertions are
//! backend-neutral: revisions are compared with revisions read earlier (never assumed to start
//! at 1 or to be consecutive), and errors are matched by variant. The compaction case, which
//! affects the whole store, runs last.
//!
//! Failures panic with the case name and what was checked; every case has a time limit, so a
//! hung store fails instead of hanging the test run.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{Event, EventStream, Kv, Revision, Store, StoreError, StoreResult};

/// Time limit of one watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of one case.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// The future of one case.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One conformance case: runs against a store under a key prefix (ending in `/`) that nothing
/// else uses, and panics on failure.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Name (also the last segment of the prefix).
    pub name: &'static str,
    /// The case.
    pub run: fn(Arc<dyn Store>, String) -> CaseFuture,
}

/// Every case, in the order [`run_all`] runs them (compaction last).
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "crud",
            run: |s, p| Box::pin(crud(s, p)),
        },
        Case {
            name: "values",
            run: |s, p| Box::pin(values(s, p)),
        },
        Case {
            name: "revisions",
            run: |s, p| Box::pin(revisions(s, p)),
        },
        Case {
            name: "list_prefix",
            run: |s, p| Box::pin(list_prefix(s, p)),
        },
        Case {
            name: "list_at_revision",
            run: |s, p| Box::pin(list_at_revision(s, p)),
        },
        Case {
            name: "pagination",
            run: |s, p| Box::pin(pagination(s, p)),
        },
        Case {
            name: "watch_replay_then_live",
            run: |s, p| Box::pin(watch_replay_then_live(s, p)),
        },
        Case {
            name: "watch_prefix",
            run: |s, p| Box::pin(watch_prefix(s, p)),
        },
        Case {
            name: "watch_no_gap",
            run: |s, p| Box::pin(watch_no_gap(s, p)),
        },
        Case {
            name: "concurrent_create",
            run: |s, p| Box::pin(concurrent_create(s, p)),
        },
        Case {
            name: "concurrent_writers",
            run: |s, p| Box::pin(concurrent_writers(s, p)),
        },
        Case {
            name: "concurrent_cas",
            run: |s, p| Box::pin(concurrent_cas(s, p)),
        },
        Case {
            name: "compaction",
            run: |s, p| Box::pin(compaction(s, p)),
        },
    ]
}

/// Runs every case. `make` is called once per case and may return a fresh store each time or
/// the same shared one.
pub async fn run_all<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let run = uuid::Uuid::new_v4().simple().to_string();
    for case in cases() {
        let store = make().await;
        eprintln!("store conformance: {}", case.name);
        run_case(store, &case, &run[..12]).await;
    }
}

/// Runs one case under `/conformance/<run>/<case name>/`.
pub async fn run_case(store: Arc<dyn Store>, case: &Case, run: &str) {
    let prefix = format!("/conformance/{run}/{}/", case.name);
    if tokio::time::timeout(CASE_TIMEOUT, (case.run)(store, prefix))
        .await
        .is_err()
    {
        panic!(
            "store conformance case {} did not finish within {CASE_TIMEOUT:?}",
            case.name
        );
    }
}

// ---- helpers ----

fn must<T>(result: StoreResult<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: unexpected error: {e}"))
}

async fn next_event(watch: &mut EventStream, what: &str) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("{what}: watch failed: {e}"),
        Ok(None) => panic!("{what}: watch ended"),
        Err(_) => panic!("{what}: no watch event within {EVENT_TIMEOUT:?}"),
    }
}

fn put(kv: &Kv, prev: Option<&Kv>) -> Event {
    Event::Put {
        kv: kv.clone(),
        prev: prev.cloned(),
    }
}

fn deleted(prev: &Kv, revision: Revision) -> Event {
    Event::Delete {
        prev: prev.clone(),
        revision,
    }
}

fn keys(items: &[Kv]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

// ---- cases ----

async fn crud(s: Arc<dyn Store>, p: String) {
    let k = format!("{p}obj");
    assert_eq!(must(s.get(&k).await, "get of a missing key"), None);
    let r0 = must(s.revision().await, "revision");

    let c = must(s.create(&k, b"v1".to_vec()).await, "create");
    assert_eq!((c.key.as_str(), &*c.value), (k.as_str(), &b"v1"[..]));
    assert!(
        c.mod_revision > r0,
        "create revision {} after {r0}",
        c.mod_revision
    );
    assert_eq!(
        c.create_revision, c.mod_revision,
        "a new key's create and mod revisions"
    );
    assert_eq!(must(s.get(&k).await, "get"), Some(c.clone()));

    match s.create(&k, b"other".to_vec()).await {
        Err(StoreError::AlreadyExists(key)) => assert_eq!(key, k),
        other => panic!("create of an existing key: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        must(s.get(&k).await, "get after a failed create"),
        Some(c.clone())
    );

    let u = must(
        s.update(&k, b"v2".to_vec(), None).await,
        "unconditional update",
    );
    assert_eq!(&*u.value, b"v2");
    assert_eq!(
        u.create_revision, c.create_revision,
        "update keeps the create revision"
    );
    assert!(
        u.mod_revision > c.mod_revision,
        "update bumps the mod revision"
    );
    assert_eq!(must(s.get(&k).await, "get after update"), Some(u.clone()));

    match s.update(&k, b"v3".to_vec(), Some(c.mod_revision)).await {
        Err(StoreError::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!((key.as_str(), expected), (k.as_str(), c.mod_revision));
            assert_eq!(*current, u, "a conflict carries the current value");
        }
        other => panic!("stale update: expected Conflict, got {other:?}"),
    }
    assert_eq!(
        must(s.get(&k).await, "get after a conflict"),
        Some(u.clone())
    );

    let u2 = must(
        s.update(&k, b"v3".to_vec(), Some(u.mod_revision)).await,
        "update with precondition",
    );
    assert_eq!(
        (&*u2.value, u2.create_revision),
        (&b"v3"[..], c.create_revision)
    );
    assert!(u2.mod_revision > u.mod_revision);

    match s.delete(&k, Some(u.mod_revision)).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(*current, u2),
        other => panic!("stale delete: expected Conflict, got {other:?}"),
    }

    let missing = format!("{p}missing");
    match s.update(&missing, b"x".to_vec(), None).await {
        Err(StoreError::NotFound(key)) => assert_eq!(key, missing),
        other => panic!("update of a missing key: expected NotFound, got {other:?}"),
    }
    match s
        .update(&missing, b"x".to_vec(), Some(u2.mod_revision))
        .await
    {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("conditional update of a missing key: expected NotFound, got {other:?}"),
    }
    match s.delete(&missing, None).await {
        Err(StoreError::NotFound(key)) => assert_eq!(key, missing),
        other => panic!("delete of a missing key: expected NotFound, got {other:?}"),
    }

    let (prev, drev) = must(s.delete(&k, Some(u2.mod_revision)).await, "delete");
    assert_eq!(prev, u2, "delete returns the deleted value");
    assert!(
        drev > u2.mod_revision,
        "delete revision {drev} after {}",
        u2.mod_revision
    );
    assert_eq!(must(s.get(&k).await, "get after delete"), None);
    assert!(must(s.revision().await, "revision") >= drev);
    assert!(
        matches!(s.delete(&k, None).await, Err(StoreError::NotFound(_))),
        "second delete"
    );
    assert!(matches!(
        s.update(&k, vec![], None).await,
        Err(StoreError::NotFound(_))
    ));

    let again = must(s.create(&k, b"v4".to_vec()).await, "create after delete");
    assert!(
        again.create_revision > drev,
        "a re-created key gets a new create revision"
    );
    assert_eq!(again.create_revision, again.mod_revision);
    let (gone, _) = must(s.delete(&k, None).await, "unconditional delete");
    assert_eq!(gone, again);
}

async fn values(s: Arc<dyn Store>, p: String) {
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let large: Vec<u8> = (0..512 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (name, value) in [("empty", Vec::new()), ("binary", binary), ("large", large)] {
        let k = format!("{p}{name}");
        let c = must(s.create(&k, value.clone()).await, name);
        assert_eq!(&*c.value, &value[..], "{name}: create result");
        let got = must(s.get(&k).await, name).unwrap_or_else(|| panic!("{name}: missing"));
        assert_eq!(&*got.value, &value[..], "{name}: get");
        let listed = must(s.list(&k, None, 0, None).await, name);
        assert_eq!(listed.items, vec![got], "{name}: list");
    }
}

async fn revisions(s: Arc<dyn Store>, p: String) {
    let r0 = must(s.revision().await, "revision");
    let a = must(s.create(&format!("{p}a"), b"a".to_vec()).await, "create a");
    let b = must(s.create(&format!("{p}b"), b"b".to_vec()).await, "create b");
    assert!(a.mod_revision > r0);
    assert!(
        b.mod_revision > a.mod_revision,
        "revisions are global across keys"
    );
    let a2 = must(s.update(&a.key, b"a2".to_vec(), None).await, "update a");
    assert!(a2.mod_revision > b.mod_revision);
    let (_, d) = must(s.delete(&b.key, None).await, "delete b");
    assert!(d > a2.mod_revision);
    let r1 = must(s.revision().await, "revision");
    assert!(
        r1 >= d,
        "current revision {r1} is at least the last write's {d}"
    );
    let listed = must(s.list(&p, None, 0, None).await, "list");
    assert!(
        listed.revision >= d,
        "a list reads at or after the last acknowledged write"
    );
    assert_eq!(listed.items, vec![a2]);
}

async fn list_prefix(s: Arc<dyn Store>, p: String) {
    for name in ["a/2", "ab/1", "a/1", "b/1", "a", "a/sub/3"] {
        must(
            s.create(&format!("{p}{name}"), name.as_bytes().to_vec())
                .await,
            name,
        );
    }
    let full = |names: &[&str]| names.iter().map(|n| format!("{p}{n}")).collect::<Vec<_>>();

    let a = must(s.list(&format!("{p}a/"), None, 0, None).await, "list a/");
    assert_eq!(
        keys(&a.items),
        full(&["a/1", "a/2", "a/sub/3"]),
        "prefix a/ must not match ab/"
    );
    assert!(!a.more);
    for kv in &a.items {
        assert_eq!(&*kv.value, &kv.key.as_bytes()[p.len()..]);
    }
    let ab = must(s.list(&format!("{p}ab/"), None, 0, None).await, "list ab/");
    assert_eq!(keys(&ab.items), full(&["ab/1"]));

    let all = must(s.list(&p, None, 0, None).await, "list all");
    assert_eq!(
        keys(&all.items),
        full(&["a", "a/1", "a/2", "a/sub/3", "ab/1", "b/1"]),
        "key order"
    );
    assert!(!all.more);
    let none = must(
        s.list(&format!("{p}zz/"), None, 0, None).await,
        "list empty prefix",
    );
    assert!(none.items.is_empty() && !none.more);

    let exact = must(s.list(&p, None, 6, None).await, "limit = count");
    assert_eq!((exact.items.len(), exact.more), (6, false));
    let cut = must(s.list(&p, None, 5, None).await, "limit < count");
    assert_eq!((cut.items.len(), cut.more), (5, true));
    assert_eq!(cut.items[..], all.items[..5]);

    let after = must(
        s.list(&p, Some(&format!("{p}a/2")), 0, None).await,
        "start_after",
    );
    assert_eq!(
        keys(&after.items),
        full(&["a/sub/3", "ab/1", "b/1"]),
        "start_after is exclusive"
    );
    let before = must(
        s.list(&format!("{p}a/"), Some(&p), 0, None).await,
        "start_after < prefix",
    );
    assert_eq!(keys(&before.items), full(&["a/1", "a/2", "a/sub/3"]));
    let past = must(
        s.list(&format!("{p}a/"), Some(&format!("{p}a/zzz")), 0, None)
            .await,
        "past end",
    );
    assert!(past.items.is_empty() && !past.more);
}

async fn list_at_revision(s: Arc<dyn Store>, p: String) {
    let (k1, k2, k3) = (format!("{p}k1"), format!("{p}k2"), format!("{p}k3"));
    let c1 = must(s.create(&k1, b"v1".to_vec()).await, "create k1");
    let c2 = must(s.create(&k2, b"v1".to_vec()).await, "create k2");
    let u1 = must(s.update(&k1, b"v2".to_vec(), None).await, "update k1");
    let (_, d2) = must(s.delete(&k2, None).await, "delete k2");
    let c3 = must(s.create(&k3, b"v1".to_vec()).await, "create k3");

    let expect = [
        (c1.mod_revision - 1, vec![]),
        (c1.mod_revision, vec![c1.clone()]),
        (c2.mod_revision, vec![c1.clone(), c2.clone()]),
        (u1.mod_revision, vec![u1.clone(), c2.clone()]),
        (d2, vec![u1.clone()]),
        (c3.mod_revision, vec![u1.clone(), c3.clone()]),
    ];
    for (rev, items) in expect {
        let listed = must(
            s.list(&p, None, 0, Some(rev)).await,
            &format!("list at {rev}"),
        );
        assert_eq!(listed.items, items, "list at revision {rev}");
        assert_eq!(
            listed.revision, rev,
            "a list at a revision reports that revision"
        );
        assert!(!listed.more);
    }
    let now = must(s.list(&p, None, 0, None).await, "list now");
    assert_eq!(now.items, vec![u1, c3.clone()]);
    assert!(now.revision >= c3.mod_revision);

    let current = must(s.revision().await, "revision");
    match s.list(&p, None, 0, Some(current + 1_000_000)).await {
        Err(StoreError::FutureRevision { requested, .. }) => {
            assert_eq!(requested, current + 1_000_000)
        }
        other => panic!("list at a future revision: expected FutureRevision, got {other:?}"),
    }
}

async fn pagination(s: Arc<dyn Store>, p: String) {
    let key = |i: usize| format!("{p}k{i:02}");
    for i in 0..10 {
        must(
            s.create(&key(i), format!("v{i}").into_bytes()).await,
            "create",
        );
    }
    let first = must(s.list(&p, None, 4, None).await, "page 1");
    let rev = first.revision;
    assert_eq!(keys(&first.items), (0..4).map(key).collect::<Vec<_>>());
    assert!(first.more);

    // Writes between pages must not show in later pages read at the first page's revision.
    must(
        s.create(&format!("{p}k045"), b"new".to_vec()).await,
        "create between pages",
    );
    must(s.delete(&key(5), None).await, "delete between pages");
    must(
        s.update(&key(6), b"changed".to_vec(), None).await,
        "update between pages",
    );
    must(
        s.create(&key(10), b"new".to_vec()).await,
        "create at the end",
    );

    let mut all = first.items.clone();
    let mut last = first;
    let mut pages = 1;
    while last.more {
        let after = last.items.last().map(|kv| kv.key.clone());
        last = must(
            s.list(&p, after.as_deref(), 4, Some(rev)).await,
            "next page",
        );
        assert_eq!(last.revision, rev, "pages report the pinned revision");
        all.extend(last.items.iter().cloned());
        pages += 1;
        assert!(pages <= 4, "too many pages");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        keys(&all),
        (0..10).map(key).collect::<Vec<_>>(),
        "pages at one revision"
    );
    for (i, kv) in all.iter().enumerate() {
        assert_eq!(
            &*kv.value,
            format!("v{i}").as_bytes(),
            "{} as of the first page",
            kv.key
        );
    }
    let whole = must(
        s.list(&p, None, 0, Some(rev)).await,
        "whole list at the revision",
    );
    assert_eq!(whole.items, all);

    let mid = must(
        s.list(&p, Some(&format!("{p}k035")), 2, Some(rev)).await,
        "start_after absent",
    );
    assert_eq!(keys(&mid.items), vec![key(4), key(5)]);
    assert!(mid.more);

    let now = must(s.list(&p, None, 0, None).await, "list now");
    let names: Vec<&str> = now.items.iter().map(|kv| &kv.key[p.len()..]).collect();
    assert_eq!(
        names,
        [
            "k00", "k01", "k02", "k03", "k04", "k045", "k06", "k07", "k08", "k09", "k10"
        ]
    );
    assert_eq!(&*now.items[6].value, b"changed");
}

async fn watch_replay_then_live(s: Arc<dyn Store>, p: String) {
    let (a, b, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let r0 = must(s.revision().await, "revision");
    let a1 = must(s.create(&a, b"1".to_vec()).await, "create a");
    let a2 = must(s.update(&a, b"2".to_vec(), None).await, "update a");
    let b1 = must(s.create(&b, b"1".to_vec()).await, "create b");
    let (_, bdel) = must(s.delete(&b, None).await, "delete b");

    let mut w = must(s.watch(&p, r0).await, "watch");
    let history = [
        put(&a1, None),
        put(&a2, Some(&a1)),
        put(&b1, None),
        deleted(&b1, bdel),
    ];
    for (i, want) in history.iter().enumerate() {
        assert_eq!(
            &next_event(&mut w, "history").await,
            want,
            "history event {i}"
        );
    }

    let c1 = must(s.create(&c, b"1".to_vec()).await, "create c");
    let a3 = must(
        s.update(&a, b"3".to_vec(), Some(a2.mod_revision)).await,
        "update a",
    );
    let (_, adel) = must(s.delete(&a, None).await, "delete a");
    let live = [put(&c1, None), put(&a3, Some(&a2)), deleted(&a3, adel)];
    for (i, want) in live.iter().enumerate() {
        assert_eq!(&next_event(&mut w, "live").await, want, "live event {i}");
    }

    // From the middle of the history: only what came after.
    let mut mid = must(s.watch(&p, a2.mod_revision).await, "watch from the middle");
    let mut last = a2.mod_revision;
    for (i, want) in history[2..].iter().chain(&live).enumerate() {
        let got = next_event(&mut mid, "watch from the middle").await;
        assert_eq!(&got, want, "event {i} after revision {}", a2.mod_revision);
        assert!(got.revision() > last, "watch events in revision order");
        last = got.revision();
    }

    // From now: only live events.
    let now = must(s.revision().await, "revision");
    let mut fresh = must(s.watch(&p, now).await, "watch from now");
    let c2 = must(s.update(&c, b"2".to_vec(), None).await, "update c");
    assert_eq!(
        next_event(&mut fresh, "watch from now").await,
        put(&c2, Some(&c1))
    );
}

async fn watch_prefix(s: Arc<dyn Store>, p: String) {
    let r0 = must(s.revision().await, "revision");
    let mut w = must(s.watch(&format!("{p}a/"), r0).await, "watch a/");
    for other in ["ab/x", "b/x", "a"] {
        must(s.create(&format!("{p}{other}"), vec![]).await, other);
    }
    let x = must(s.create(&format!("{p}a/x"), vec![]).await, "create a/x");
    assert_eq!(
        next_event(&mut w, "watch a/").await,
        put(&x, None),
        "only keys under a/"
    );
    must(
        s.update(&format!("{p}ab/x"), b"2".to_vec(), None).await,
        "update ab/x",
    );
    must(s.delete(&format!("{p}b/x"), None).await, "delete b/x");
    let (_, xdel) = must(s.delete(&x.key, None).await, "delete a/x");
    assert_eq!(
        next_event(&mut w, "watch a/").await,
        deleted(&x, xdel),
        "only keys under a/"
    );
}

async fn watch_no_gap(s: Arc<dyn Store>, p: String) {
    const N: usize = 300;
    let r0 = must(s.revision().await, "revision");
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let writer = {
        let s = s.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let mut started_tx = Some(started_tx);
            let mut created = Vec::new();
            for i in 0..N {
                created.push(must(
                    s.create(&format!("{p}k{i:04}"), vec![1]).await,
                    "create",
                ));
                if i == N / 4
                    && let Some(tx) = started_tx.take()
                {
                    let _ = tx.send(());
                }
            }
            created
        })
    };
    // Start watching while the writes go on: history and live events must join seamlessly.
    let _ = started.await;
    let mut w = must(s.watch(&p, r0).await, "watch during writes");
    let created = writer.await.unwrap_or_else(|e| panic!("writer task: {e}"));
    for (i, kv) in created.iter().enumerate() {
        let got = next_event(&mut w, "watch during writes").await;
        assert_eq!(
            got,
            put(kv, None),
            "event {i}: no gap, no duplicate, in order"
        );
    }
    let last = must(s.create(&format!("{p}last"), vec![]).await, "create last");
    assert_eq!(
        next_event(&mut w, "after the writes").await,
        put(&last, None)
    );
}

async fn concurrent_create(s: Arc<dyn Store>, p: String) {
    let key = format!("{p}contended");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (s, key) = (s.clone(), key.clone());
            tokio::spawn(async move { s.create(&key, format!("writer {i}").into_bytes()).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap_or_else(|e| panic!("create task: {e}")) {
            Ok(kv) => winners.push(kv),
            Err(StoreError::AlreadyExists(k)) => assert_eq!(k, key),
            Err(e) => panic!("concurrent create: unexpected error {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent create of a key succeeds"
    );
    assert_eq!(must(s.get(&key).await, "get"), winners.pop());
}

async fn concurrent_writers(s: Arc<dyn Store>, p: String) {
    const WRITERS: usize = 16;
    const EACH: usize = 25;
    let r0 = must(s.revision().await, "revision");
    let mut w = must(s.watch(&p, r0).await, "watch");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (s, p) = (s.clone(), p.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..EACH {
                    let key = format!("{p}w{t:02}/{i:02}");
                    out.push(must(
                        s.create(&key, key.clone().into_bytes()).await,
                        "create",
                    ));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let created = task.await.unwrap_or_else(|e| panic!("writer task: {e}"));
        assert!(
            created
                .windows(2)
                .all(|w| w[0].mod_revision < w[1].mod_revision),
            "one writer's revisions increase"
        );
        all.extend(created);
    }
    let revs: HashSet<Revision> = all.iter().map(|kv| kv.mod_revision).collect();
    assert_eq!(
        revs.len(),
        WRITERS * EACH,
        "every write gets its own revision"
    );
    assert!(revs.iter().all(|r| *r > r0));

    all.sort_by(|a, b| a.key.cmp(&b.key));
    let listed = must(s.list(&p, None, 0, None).await, "list");
    assert_eq!(listed.items, all);

    let mut seen = HashSet::new();
    let mut last = r0;
    for _ in 0..WRITERS * EACH {
        let event = next_event(&mut w, "watch of concurrent writes").await;
        assert!(event.revision() > last, "watch events in revision order");
        last = event.revision();
        assert!(seen.insert(event.key().to_string()), "one event per create");
    }
    assert_eq!(seen.len(), WRITERS * EACH);
}

async fn concurrent_cas(s: Arc<dyn Store>, p: String) {
    const TASKS: usize = 8;
    const EACH: usize = 10;
    let key = format!("{p}counter");
    must(s.create(&key, b"0".to_vec()).await, "create counter");
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (s, key) = (s.clone(), key.clone());
            tokio::spawn(async move {
                let mut conflicts = 0usize;
                for _ in 0..EACH {
                    let mut current =
                        must(s.get(&key).await, "get").unwrap_or_else(|| panic!("gone"));
                    loop {
                        let n: u64 = std::str::from_utf8(&current.value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("counter value {:?}", current.value));
                        let next = (n + 1).to_string().into_bytes();
                        match s.update(&key, next, Some(current.mod_revision)).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { current: now, .. }) => {
                                conflicts += 1;
                                current = *now;
                            }
                            Err(e) => panic!("counter update: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap_or_else(|e| panic!("cas task: {e}"));
    }
    let value = must(s.get(&key).await, "get").map(|kv| kv.value.to_vec());
    assert_eq!(
        value,
        Some((TASKS * EACH).to_string().into_bytes()),
        "no lost update"
    );
}

async fn compaction(s: Arc<dyn Store>, p: String) {
    let (k1, k2, k3, k4) = (
        format!("{p}k1"),
        format!("{p}k2"),
        format!("{p}k3"),
        format!("{p}k4"),
    );
    let c1 = must(s.create(&k1, b"v1".to_vec()).await, "create k1");
    let u1 = must(s.update(&k1, b"v2".to_vec(), None).await, "update k1");
    must(s.create(&k2, b"v1".to_vec()).await, "create k2");
    must(s.delete(&k2, None).await, "delete k2");
    let c3 = must(s.create(&k3, b"v1".to_vec()).await, "create k3");
    let rc = must(s.revision().await, "revision");
    must(s.compact(rc).await, "compact");

    match s.list(&p, None, 0, Some(c1.mod_revision)).await {
        Err(StoreError::Compacted { .. }) => {}
        other => panic!("list at a compacted revision: expected Compacted, got {other:?}"),
    }
    match s.watch(&p, c1.mod_revision).await {
        Err(StoreError::Compacted { .. }) => {}
        Ok(mut w) => match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
            Ok(Some(Err(StoreError::Compacted { .. }))) => {}
            other => panic!("watch from a compacted revision: expected Compacted, got {other:?}"),
        },
        Err(e) => panic!("watch from a compacted revision: expected Compacted, got {e}"),
    }

    assert_eq!(
        must(s.get(&k1).await, "get k1"),
        Some(u1.clone()),
        "compaction keeps latest values"
    );
    assert_eq!(must(s.get(&k2).await, "get k2"), None);
    assert_eq!(must(s.get(&k3).await, "get k3"), Some(c3.clone()));
    let now = must(s.list(&p, None, 0, None).await, "list now");
    assert_eq!(now.items, vec![u1.clone(), c3.clone()]);
    let at = must(
        s.list(&p, None, 0, Some(rc)).await,
        "list at the compaction revision",
    );
    assert_eq!(at.items, vec![u1.clone(), c3]);

    let mut w = must(s.watch(&p, rc).await, "watch from the compaction revision");
    let c4 = must(s.create(&k4, vec![]).await, "create k4");
    let u2 = must(s.update(&k1, b"v3".to_vec(), None).await, "update k1");
    assert_eq!(
        next_event(&mut w, "watch after compaction").await,
        put(&c4, None)
    );
    assert_eq!(
        next_event(&mut w, "watch after compaction").await,
        put(&u2, Some(&u1))
    );
    let listed = must(s.list(&p, None, 0, None).await, "list after compaction");
    assert_eq!(
        keys(&listed.items),
        vec![k1.as_str(), k3.as_str(), k4.as_str()]
    );
}
