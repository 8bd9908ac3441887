//! The etcd v3 backend of the [`Store`] trait.
//!
//! Every store key is stored in etcd as `prefix + key` (a plain byte prefix, like
//! kube-apiserver's `--etcd-prefix`), and the prefix is stripped from every key read back, so
//! several apiservers or test runs can share one etcd under different prefixes. Pick prefixes
//! of which none is a prefix of another (`/a` and `/ab` overlap; `/a/` and `/ab/` do not).
//!
//! The mapping:
//!
//! * `get` is a Range of one key; `list` a Range of `[prefix + max(list prefix, start_after +
//!   "\0"), prefix_end)` with etcd's `limit`, `revision` and `more`. Revisions are etcd's own
//!   (the store's revision *is* etcd's revision, shared by every prefix).
//! * `create` is a Txn `create_revision(key) == 0 → put`; `update` and `delete` a Txn
//!   `version(key) > 0 [&& mod_revision(key) == expected] → put/delete with prev_kv`, whose
//!   failure branch reads the key, so `NotFound` and `Conflict` (with the current value) come
//!   from one atomic round trip.
//! * `watch` is an etcd Watch (its own gRPC stream) from `after + 1` with `prev_kv`, drained by
//!   a spawned task into a bounded channel, so the stream lives independently of the future that
//!   opened it. etcd's `compact_revision` becomes a final `Compacted` item; a transport failure a
//!   final `Backend` item. Dropping the stream (or the store) cancels the etcd watch.
//! * `compact` is a logical etcd Compact; compacting at or below the current compaction point is
//!   a no-op, as in the embedded store.
//!
//! etcd does not report its compaction point with a compacted-revision error, so the
//! `compacted` field of [`StoreError::Compacted`] from `list` is the highest compaction point
//! this client has seen (or `requested + 1`, a lower bound).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    KvClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions,
    WatchStream,
};
use tokio::sync::{mpsc, watch as signal};

use super::{
    Event, EventStream, Kv, ListResult, Revision, Store, StoreError, StoreFuture, StoreResult,
};

/// Largest gRPC message accepted from etcd (etcd itself sends up to `i32::MAX` bytes; a large
/// list without a limit easily exceeds tonic's 4 MiB default).
const MAX_MESSAGE: usize = i32::MAX as usize;
/// Watch events buffered between the etcd stream and the consumer. When the consumer lags,
/// gRPC flow control pushes back on etcd, which buffers server side and eventually cancels the
/// watch with a compaction error if the watcher falls behind its history.
const WATCH_BUFFER: usize = 1024;

/// Tuning of an [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Time limit of one etcd request (also of `connect`'s first request and of opening a
    /// watch). Default 30 s.
    pub request_timeout: Duration,
    /// Time limit of one TCP connection attempt. Default 5 s.
    pub dial_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] on etcd v3. See the module docs for the mapping.
///
/// Dropping the last reference ends every watch it opened.
pub struct EtcdStore {
    /// Kept for the connection's lifetime (it owns the endpoint set of the balanced channel).
    _client: Client,
    kv: KvClient,
    watcher: WatchClient,
    prefix: Arc<str>,
    endpoints: Vec<String>,
    opts: EtcdOptions,
    /// The highest compaction point seen (our own compactions and etcd's watch responses).
    compacted: Arc<AtomicI64>,
    /// Never sent on; dropping it (with the store) stops every watch task.
    shutdown: signal::Sender<()>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("compacted", &self.compacted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:port` or `host:port`) with default
    /// options and checks that it answers. Keys are stored under `prefix` (may be empty).
    pub async fn connect(endpoints: &[String], prefix: &str) -> StoreResult<Arc<Self>> {
        Self::connect_with(endpoints, prefix, EtcdOptions::default()).await
    }

    /// [`EtcdStore::connect`] with explicit options.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        opts: EtcdOptions,
    ) -> StoreResult<Arc<Self>> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(opts.dial_timeout)
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(connect))
            .await
            .map_err(backend)?;
        let kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        let watcher = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let (shutdown, _) = signal::channel(());
        let store = Arc::new(Self {
            _client: client,
            kv,
            watcher,
            prefix: prefix.into(),
            endpoints: endpoints.to_vec(),
            opts,
            compacted: Arc::new(AtomicI64::new(0)),
            shutdown,
        });
        store
            .current_revision()
            .await
            .map_err(|e| StoreError::Backend(format!("etcd at {}: {e}", endpoints.join(","))))?;
        Ok(store)
    }

    /// The key prefix in etcd.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix + key` as etcd bytes.
    fn full(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn to_kv(&self, kv: &KeyValue) -> StoreResult<Kv> {
        to_kv(&self.prefix, kv)
    }

    /// Runs one etcd request under the request timeout.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, etcd_client::Error> {
        match tokio::time::timeout(self.opts.request_timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(etcd_client::Error::Internal(format!(
                "{what}: no answer from etcd within {:?}",
                self.opts.request_timeout
            ))),
        }
    }

    async fn txn(&self, txn: Txn) -> StoreResult<(TxnResponse, Revision)> {
        let resp = self
            .call("txn", self.kv.clone().txn(txn))
            .await
            .map_err(backend)?;
        let rev = resp.header().map(|h| h.revision()).ok_or_else(no_header)?;
        Ok((resp, rev))
    }

    /// The current revision: the header of a count-only Range of one key.
    async fn current_revision(&self) -> StoreResult<Revision> {
        let key = nonempty(self.prefix.as_bytes().to_vec());
        let resp = self
            .call(
                "revision",
                self.kv
                    .clone()
                    .get(key, Some(GetOptions::new().with_count_only())),
            )
            .await
            .map_err(backend)?;
        resp.header().map(|h| h.revision()).ok_or_else(no_header)
    }

    /// Maps a revision error of a request at `requested`.
    async fn revision_error(&self, e: etcd_client::Error, requested: Revision) -> StoreError {
        if is_compacted(&e) {
            StoreError::Compacted {
                requested,
                compacted: self.compacted.load(Ordering::Relaxed).max(requested + 1),
            }
        } else if is_future(&e) {
            match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(e) => e,
            }
        } else {
            backend(e)
        }
    }

    /// The failure branch of an update or delete txn: the key's current value, if any.
    fn failed_precondition(
        &self,
        key: &str,
        expected: Option<Revision>,
        resp: &TxnResponse,
    ) -> StoreError {
        let current = match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| self.to_kv(kv)),
            _ => return StoreError::Backend("etcd txn: missing the read of the key".into()),
        };
        match (current, expected) {
            (None, _) => StoreError::NotFound(key.to_string()),
            (Some(Err(e)), _) => e,
            (Some(Ok(current)), Some(expected)) => StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: Box::new(current),
            },
            (Some(Ok(_)), None) => {
                StoreError::Backend(format!("etcd txn on {key} failed with the key present"))
            }
        }
    }

    /// The compares of an update or delete: the key exists (and has the expected revision).
    fn preconditions(&self, k: &[u8], expected: Option<Revision>) -> Vec<Compare> {
        let mut compares = vec![Compare::version(k.to_vec(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(
                k.to_vec(),
                CompareOp::Equal,
                expected,
            ));
        }
        compares
    }

    async fn open_watch(&self, prefix: &str, after: Revision) -> StoreResult<EventStream> {
        let p = self.full(prefix);
        let (key, end) = if p.is_empty() {
            (vec![0], vec![0])
        } else {
            let end = prefix_end(&p);
            (p, end)
        };
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after.max(0) + 1)
            .with_prev_key();
        let open = async {
            let mut stream = self.watcher.clone().watch(key, Some(opts)).await?;
            let created = stream.message().await?;
            Ok::<_, etcd_client::Error>((stream, created))
        };
        let (stream, created) = self.call("watch", open).await.map_err(backend)?;
        let Some(created) = created else {
            return Err(StoreError::Backend(
                "etcd closed the watch before creating it".into(),
            ));
        };
        if created.compact_revision() > 0 {
            self.compacted
                .fetch_max(created.compact_revision(), Ordering::Relaxed);
            return Err(StoreError::Compacted {
                requested: after,
                compacted: created.compact_revision(),
            });
        }
        if created.canceled() {
            return Err(StoreError::Backend(format!(
                "etcd refused the watch: {}",
                created.cancel_reason()
            )));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let forwarder = Forwarder {
            prefix: self.prefix.clone(),
            compacted: self.compacted.clone(),
            after,
            tx,
            shutdown: self.shutdown.subscribe(),
        };
        tokio::spawn(forwarder.run(stream));
        Ok(Box::pin(ChannelStream(rx)))
    }
}

impl Store for EtcdStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Kv>> {
        Box::pin(async move {
            let resp = self
                .call("get", self.kv.clone().get(nonempty(self.full(key)), None))
                .await
                .map_err(backend)?;
            resp.kvs().first().map(|kv| self.to_kv(kv)).transpose()
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> StoreFuture<'a, ListResult> {
        Box::pin(async move {
            let p = self.full(prefix);
            let end = if p.is_empty() {
                vec![0]
            } else {
                prefix_end(&p)
            };
            let mut start = nonempty(p);
            if let Some(after) = start_after {
                let mut after = self.full(after);
                after.push(0);
                if after > start {
                    start = after;
                }
            }
            let mut opts = GetOptions::new().with_range(end);
            if limit > 0 {
                opts = opts.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
            }
            if let Some(rev) = revision {
                // etcd's first revision is 1, an empty store; anything before it reads as that
                // (etcd would read a revision <= 0 as "now").
                opts = opts.with_revision(rev.max(1));
            }
            let resp = match self
                .call("list", self.kv.clone().get(start, Some(opts)))
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    return Err(match revision {
                        Some(rev) => self.revision_error(e, rev).await,
                        None => backend(e),
                    });
                }
            };
            let header_rev = resp.header().map(|h| h.revision()).ok_or_else(no_header)?;
            let items = resp
                .kvs()
                .iter()
                .map(|kv| self.to_kv(kv))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(ListResult {
                items,
                revision: revision.unwrap_or(header_rev),
                more: resp.more(),
            })
        })
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, Kv> {
        Box::pin(async move {
            let k = self.full(key);
            let stored: Arc<[u8]> = Arc::from(&value[..]);
            let txn = Txn::new()
                .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(k, value, None)]);
            let (resp, rev) = self.txn(txn).await?;
            if !resp.succeeded() {
                return Err(StoreError::AlreadyExists(key.to_string()));
            }
            Ok(Kv {
                key: key.to_string(),
                value: stored,
                create_revision: rev,
                mod_revision: rev,
            })
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> StoreFuture<'a, Kv> {
        Box::pin(async move {
            let k = self.full(key);
            let stored: Arc<[u8]> = Arc::from(&value[..]);
            let txn = Txn::new()
                .when(self.preconditions(&k, expected))
                .and_then([TxnOp::put(
                    k.clone(),
                    value,
                    Some(PutOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(k, None)]);
            let (resp, rev) = self.txn(txn).await?;
            if !resp.succeeded() {
                return Err(self.failed_precondition(key, expected, &resp));
            }
            let create_revision = match resp.op_responses().into_iter().next() {
                Some(TxnOpResponse::Put(put)) => put.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            }
            .ok_or_else(|| {
                StoreError::Backend(format!("etcd update of {key}: no previous value"))
            })?;
            Ok(Kv {
                key: key.to_string(),
                value: stored,
                create_revision,
                mod_revision: rev,
            })
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> StoreFuture<'a, (Kv, Revision)> {
        Box::pin(async move {
            let k = self.full(key);
            let txn = Txn::new()
                .when(self.preconditions(&k, expected))
                .and_then([TxnOp::delete(
                    k.clone(),
                    Some(DeleteOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(k, None)]);
            let (resp, rev) = self.txn(txn).await?;
            if !resp.succeeded() {
                return Err(self.failed_precondition(key, expected, &resp));
            }
            let prev = match resp.op_responses().into_iter().next() {
                Some(TxnOpResponse::Delete(del)) => del.prev_kvs().first().map(|kv| self.to_kv(kv)),
                _ => None,
            }
            .ok_or_else(|| {
                StoreError::Backend(format!("etcd delete of {key}: no previous value"))
            })??;
            Ok((prev, rev))
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: Revision) -> StoreFuture<'a, EventStream> {
        Box::pin(self.open_watch(prefix, after))
    }

    fn revision(&self) -> StoreFuture<'_, Revision> {
        Box::pin(self.current_revision())
    }

    fn compact(&self, revision: Revision) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if revision <= 0 {
                return Ok(());
            }
            match self
                .call("compact", self.kv.clone().compact(revision, None))
                .await
            {
                Ok(_) => {
                    self.compacted.fetch_max(revision, Ordering::Relaxed);
                    Ok(())
                }
                // At or below the current compaction point: nothing to do.
                Err(e) if is_compacted(&e) => Ok(()),
                Err(e) => Err(self.revision_error(e, revision).await),
            }
        })
    }
}

/// Drains one etcd watch into the channel behind an [`EventStream`].
struct Forwarder {
    prefix: Arc<str>,
    compacted: Arc<AtomicI64>,
    after: Revision,
    tx: mpsc::Sender<StoreResult<Event>>,
    shutdown: signal::Receiver<()>,
}

impl Forwarder {
    /// Runs until the etcd watch ends, the consumer drops the stream or the store is dropped;
    /// dropping `stream` then cancels the watch in etcd.
    async fn run(mut self, mut stream: WatchStream) {
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = self.tx.closed() => return,
                _ = self.shutdown.changed() => return,
            };
            let resp = match message {
                Ok(Some(resp)) => resp,
                Ok(None) => return,
                Err(e) => {
                    self.send(Err(backend(e))).await;
                    return;
                }
            };
            if resp.compact_revision() > 0 {
                self.compacted
                    .fetch_max(resp.compact_revision(), Ordering::Relaxed);
                self.send(Err(StoreError::Compacted {
                    requested: self.after,
                    compacted: resp.compact_revision(),
                }))
                .await;
                return;
            }
            for event in resp.events() {
                let event = convert_event(&self.prefix, event);
                let failed = event.is_err();
                if !self.send(event).await || failed {
                    return;
                }
            }
            if resp.canceled() {
                let reason = resp.cancel_reason();
                if !reason.is_empty() {
                    self.send(Err(StoreError::Backend(format!(
                        "etcd cancelled the watch: {reason}"
                    ))))
                    .await;
                }
                return;
            }
        }
    }

    /// Sends one item; false when the consumer or the store is gone.
    async fn send(&mut self, item: StoreResult<Event>) -> bool {
        tokio::select! {
            sent = self.tx.send(item) => sent.is_ok(),
            _ = self.shutdown.changed() => false,
        }
    }
}

/// An etcd watch event as a store event. A missing previous value (etcd could not read it: the
/// revision before the event was compacted meanwhile) ends the watch with `Compacted`.
fn convert_event(prefix: &str, event: &etcd_client::Event) -> StoreResult<Event> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Backend("etcd watch event without a key".into()))?;
    let prev = match event.prev_kv() {
        Some(prev) => Some(to_kv(prefix, prev)?),
        None if event.event_type() == EventType::Put && kv.version() == 1 => None,
        None => {
            return Err(StoreError::Compacted {
                requested: kv.mod_revision() - 1,
                compacted: kv.mod_revision(),
            });
        }
    };
    match (event.event_type(), prev) {
        (EventType::Put, prev) => Ok(Event::Put {
            kv: to_kv(prefix, kv)?,
            prev,
        }),
        (EventType::Delete, Some(prev)) => Ok(Event::Delete {
            prev,
            revision: kv.mod_revision(),
        }),
        (EventType::Delete, None) => Err(StoreError::Backend(
            "etcd delete event without a previous value".into(),
        )),
    }
}

/// The receiving end of a watch task.
struct ChannelStream(mpsc::Receiver<StoreResult<Event>>);

impl futures_core::Stream for ChannelStream {
    type Item = StoreResult<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx)
    }
}

fn to_kv(prefix: &str, kv: &KeyValue) -> StoreResult<Kv> {
    let key = kv
        .key()
        .strip_prefix(prefix.as_bytes())
        .ok_or_else(|| StoreError::Backend(format!("etcd key outside the prefix {prefix:?}")))?;
    let key = std::str::from_utf8(key)
        .map_err(|_| StoreError::Backend(format!("etcd key {key:?} is not UTF-8")))?;
    Ok(Kv {
        key: key.to_string(),
        value: Arc::from(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The first key after every key starting with `prefix` (`"\0"`: the end of the key space).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|b| *b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// etcd rejects an empty key; `"\0"` is the first key there can be.
fn nonempty(key: Vec<u8>) -> Vec<u8> {
    if key.is_empty() { vec![0] } else { key }
}

fn backend(e: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

fn no_header() -> StoreError {
    StoreError::Backend("etcd response without a header".into())
}

fn status_message(e: &etcd_client::Error) -> &str {
    match e {
        etcd_client::Error::GRpcStatus(status) => status.message(),
        _ => "",
    }
}

/// etcd's `ErrCompacted` ("mvcc: required revision has been compacted").
fn is_compacted(e: &etcd_client::Error) -> bool {
    status_message(e).contains("required revision has been compacted")
}

/// etcd's `ErrFutureRev` ("mvcc: required revision is a future revision").
fn is_future(e: &etcd_client::Error) -> bool {
    status_message(e).contains("required revision is a future revision")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
