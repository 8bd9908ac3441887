//! The watch cache: one store watch per resource, fanned out to every client watch.
//!
//! Each resource's cacher lists the store once, then follows one store watch, keeping the
//! current objects and a bounded history of recent events. A client watch is served from
//! memory: the current objects as its initial state (no resourceVersion), or the history
//! after its resourceVersion, then live events, with no gap and no duplicate because taking
//! the snapshot and subscribing happen under the same lock the cacher applies events under.
//! Watches from before the history fall through to the store (which may answer 410 Gone),
//! and a watcher that cannot keep up is ended with 410 so that it re-lists, as upstream.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use crate::store::{Event, Kv, Revision, Store, StoreError, StoreResult};

/// Events kept per resource for watches that resume from a resourceVersion.
pub const HISTORY: usize = 10_000;
/// Events a slow client watch may fall behind before it is ended.
const BACKLOG: usize = 10_000;

/// What a client watch starts with.
#[derive(Debug)]
pub enum Start {
    /// The current objects (to send as ADDED) at a revision, then live events after it.
    Snapshot {
        objects: Vec<Kv>,
        revision: Revision,
    },
    /// Events after the requested revision, replayed from history, then live ones.
    Replay(Vec<Arc<Event>>),
}

/// A client watch: its start and the live events that follow.
#[derive(Debug)]
pub struct Subscription {
    /// Initial objects or replayed events.
    pub start: Start,
    live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    after: Revision,
}

impl Subscription {
    /// The next live event, in order; an error ends the watch (the client must re-list).
    pub async fn next(&mut self) -> Option<StoreResult<Arc<Event>>> {
        loop {
            match self.live.recv().await {
                Ok(ev) if ev.revision() <= self.after => continue,
                Ok(ev) => {
                    self.after = ev.revision();
                    return Some(Ok(ev));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return Some(Err(StoreError::Compacted {
                        requested: self.after,
                        compacted: self.after + 1,
                    }));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[derive(Debug)]
struct State {
    objects: BTreeMap<String, Kv>,
    history: VecDeque<Arc<Event>>,
    /// Revision of the last applied event (or of the initial list).
    revision: Revision,
    /// History holds every event after this revision.
    oldest: Revision,
    tx: tokio::sync::broadcast::Sender<Arc<Event>>,
}

#[derive(Debug)]
struct Cacher {
    state: Mutex<State>,
}

impl Cacher {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The caches of all resources of one apiserver.
#[derive(Debug)]
pub struct WatchCache {
    store: Arc<dyn Store>,
    cachers: Mutex<HashMap<String, Arc<Cacher>>>,
}

impl WatchCache {
    /// A cache over `store`; resources are cached on their first watch.
    pub fn new(store: Arc<dyn Store>) -> Self {
        WatchCache {
            store,
            cachers: Mutex::new(HashMap::new()),
        }
    }

    /// Subscribes to changes under `prefix` (a resource prefix, or a namespace inside one:
    /// the cacher is per resource and `namespace_prefix` narrows what is delivered).
    /// `after` None starts with a snapshot.
    pub async fn watch(
        &self,
        resource_prefix: &str,
        after: Option<Revision>,
    ) -> StoreResult<Subscription> {
        let cacher = self.cacher(resource_prefix).await?;
        let st = cacher.state();
        match after {
            None => {
                let objects = st.objects.values().cloned().collect();
                let live = st.tx.subscribe();
                Ok(Subscription {
                    start: Start::Snapshot {
                        objects,
                        revision: st.revision,
                    },
                    live,
                    after: st.revision,
                })
            }
            Some(rv) if rv >= st.oldest => {
                let replay: Vec<Arc<Event>> = st
                    .history
                    .iter()
                    .filter(|e| e.revision() > rv)
                    .cloned()
                    .collect();
                let last = replay
                    .last()
                    .map(|e| e.revision())
                    .unwrap_or(rv.max(st.revision.min(rv)));
                let live = st.tx.subscribe();
                Ok(Subscription {
                    start: Start::Replay(replay),
                    live,
                    after: last.max(rv),
                })
            }
            Some(rv) => Err(StoreError::Compacted {
                requested: rv,
                compacted: st.oldest,
            }),
        }
    }

    async fn cacher(&self, prefix: &str) -> StoreResult<Arc<Cacher>> {
        if let Some(c) = self
            .cachers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
        {
            return Ok(Arc::clone(c));
        }
        let (cacher, events) = self.start(prefix).await?;
        let mut map = self.cachers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(prefix) {
            // Another request started it meanwhile: keep theirs.
            return Ok(Arc::clone(existing));
        }
        map.insert(prefix.to_string(), Arc::clone(&cacher));
        drop(map);
        let store = Arc::clone(&self.store);
        let prefix = prefix.to_string();
        let weak = Arc::downgrade(&cacher);
        tokio::spawn(follow(store, prefix, weak, events));
        Ok(cacher)
    }

    async fn start(&self, prefix: &str) -> StoreResult<(Arc<Cacher>, crate::store::EventStream)> {
        let list = self.store.list(prefix, None, 0, None).await?;
        let events = self.store.watch(prefix, list.revision).await?;
        let (tx, _) = tokio::sync::broadcast::channel(BACKLOG);
        let objects = list
            .items
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let state = State {
            objects,
            history: VecDeque::new(),
            revision: list.revision,
            oldest: list.revision,
            tx,
        };
        Ok((
            Arc::new(Cacher {
                state: Mutex::new(state),
            }),
            events,
        ))
    }
}

/// Applies the store's events to a cacher until the store watch ends; then re-lists.
async fn follow(
    store: Arc<dyn Store>,
    prefix: String,
    cacher: std::sync::Weak<Cacher>,
    mut events: crate::store::EventStream,
) {
    loop {
        while let Some(next) = events.next().await {
            let Some(c) = cacher.upgrade() else { return };
            let Ok(ev) = next else { break };
            let ev = Arc::new(ev);
            let mut st = c.state();
            match &*ev {
                Event::Put { kv, .. } => {
                    st.objects.insert(kv.key.clone(), kv.clone());
                }
                Event::Delete { prev, .. } => {
                    st.objects.remove(&prev.key);
                }
            }
            st.revision = ev.revision();
            st.history.push_back(Arc::clone(&ev));
            if st.history.len() > HISTORY
                && let Some(old) = st.history.pop_front()
            {
                st.oldest = old.revision();
            }
            // Sent under the lock, so subscribers see exactly the events after their start.
            let _ = st.tx.send(ev);
        }
        // The store watch ended (compaction, backend restart): rebuild from a fresh list and
        // end every client watch so that clients re-list too.
        let Some(c) = cacher.upgrade() else { return };
        loop {
            let fresh = async {
                let list = store.list(&prefix, None, 0, None).await?;
                let events = store.watch(&prefix, list.revision).await?;
                StoreResult::Ok((list, events))
            };
            match fresh.await {
                Ok((list, ev)) => {
                    let mut st = c.state();
                    st.objects = list
                        .items
                        .into_iter()
                        .map(|kv| (kv.key.clone(), kv))
                        .collect();
                    st.history.clear();
                    st.revision = list.revision;
                    st.oldest = list.revision;
                    let (tx, _) = tokio::sync::broadcast::channel(BACKLOG);
                    // Dropping the old sender closes every subscriber's stream.
                    st.tx = tx;
                    events = ev;
                    break;
                }
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "watch cache re-list failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Store> = crate::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        (dir, s)
    }

    async fn next_rev(sub: &mut Subscription) -> Revision {
        tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .revision()
    }

    #[tokio::test]
    async fn snapshot_then_live_and_replay_from_history() {
        let (_d, s) = store().await;
        let cache = WatchCache::new(Arc::clone(&s));
        let a = s.create("/r/a", b"1".to_vec()).await.unwrap();
        let mut snap = cache.watch("/r/", None).await.unwrap();
        match &snap.start {
            Start::Snapshot { objects, revision } => {
                assert_eq!(objects.len(), 1);
                assert!(*revision >= a.mod_revision);
            }
            other => panic!("{other:?}"),
        }
        let b = s.create("/r/b", b"2".to_vec()).await.unwrap();
        assert_eq!(next_rev(&mut snap).await, b.mod_revision);
        let c = s.update("/r/a", b"3".to_vec(), None).await.unwrap();
        assert_eq!(next_rev(&mut snap).await, c.mod_revision);

        // A watch from a's revision replays b and c from history, then goes live.
        let mut resumed = cache.watch("/r/", Some(a.mod_revision)).await.unwrap();
        match &resumed.start {
            Start::Replay(evs) => {
                let revs: Vec<_> = evs.iter().map(|e| e.revision()).collect();
                assert_eq!(revs, vec![b.mod_revision, c.mod_revision]);
            }
            other => panic!("{other:?}"),
        }
        let (_, d) = s.delete("/r/b", None).await.unwrap();
        assert_eq!(next_rev(&mut resumed).await, d);
        assert_eq!(next_rev(&mut snap).await, d);
    }

    #[tokio::test]
    async fn many_watchers_share_one_store_watch() {
        let (_d, s) = store().await;
        let cache = WatchCache::new(Arc::clone(&s));
        let mut subs = Vec::new();
        for _ in 0..50 {
            subs.push(cache.watch("/many/", None).await.unwrap());
        }
        assert_eq!(cache.cachers.lock().unwrap().len(), 1);
        let kv = s.create("/many/x", b"v".to_vec()).await.unwrap();
        for sub in &mut subs {
            assert_eq!(next_rev(sub).await, kv.mod_revision);
        }
    }
}
