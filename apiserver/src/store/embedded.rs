//! The embedded store: the apiserver's default storage, a crash-safe single-node [`Store`].
//!
//! # Design
//!
//! * **Index.** An in-memory MVCC index, `BTreeMap<key, Vec<Version>>`, each version holding
//!   its mod revision, create revision and value (or a tombstone). A read at revision `r` takes,
//!   per key, the newest version `<= r`, so paginated lists at one revision are consistent while
//!   writes go on. A `BTreeMap` gives prefix ranges in key order for free, and one global
//!   revision counter orders everything. A deque of `(revision, key)` remembers which key every
//!   revision since the compaction point changed, so a watch replays its history by walking only
//!   the revisions after its start point (a watch usually starts right after a list).
//! * **Durability.** An append-only write-ahead log (`wal` in the data directory). A write is
//!   acknowledged, and becomes visible to reads and watches, only after its record is on disk.
//!   Writes use *group commit*: callers are ordered by one sequencer mutex, which checks the
//!   preconditions (`AlreadyExists`, `NotFound`, `Conflict`) against the latest state including
//!   writes still in flight, assigns the next revision and queues the record, all atomically, so
//!   two concurrent creates of a key give exactly one success. One writer thread takes everything
//!   queued, writes it with one `write` and one `fdatasync`, applies it to the index in revision
//!   order, notifies watchers and acknowledges the callers. While it syncs, the next batch
//!   gathers, so throughput grows with the number of concurrent writers. If the log cannot be
//!   written the store refuses all later writes (after a failed `fsync` the page cache can no
//!   longer be trusted); reads keep working.
//! * **Framing and recovery.** Each batch is one frame: `len u32 | crc32(payload) u32 |
//!   crc32(first 8 bytes) u32 | payload`, the payload being the batch's records (`put`: revision,
//!   create revision, key, value; `delete`: revision, key). Because every earlier frame was
//!   synced before the next write started, a crash can only damage the last frame. On open the
//!   log is replayed; an invalid frame with no valid frame after it is a torn tail and is cut
//!   off (open never fails for it), while an invalid frame followed by a valid one is corruption
//!   and fails open. Framing whole batches (rather than single records) matters: a torn batch may
//!   keep later pages and lose earlier ones, which would look like mid-log corruption otherwise.
//! * **Snapshots.** `compact` (and a log that outgrows `snapshot_log_bytes`, or the last
//!   snapshot's size if larger, so rewriting stays amortized linear) writes `snapshot`: the
//!   current and compacted revisions and every retained version as records in revision order.
//!   It is written to a temporary file, synced, renamed into place and the directory synced; only
//!   then is the log truncated. Recovery is snapshot + the log records after its revision, so a
//!   crash between the rename and the truncation is harmless. History since the compaction point
//!   survives restarts, revisions are never reused, and the compaction point is persistent.
//! * **Watch.** Registration reads the history and adds the watcher under the index lock that
//!   the writer holds while applying and fanning out, so history and live events meet without a
//!   gap or a duplicate. Each watcher has a bounded channel; one that falls
//!   [`EmbeddedOptions::watch_backlog`] events behind gets a final `Compacted` error (the
//!   apiserver answers 410 Gone and the client re-lists) and is dropped: writers never wait
//!   for watchers.
//! * **Compaction** drops, per key, every version older than the newest one at or before the
//!   compaction point, and that one too if it is a tombstone. Reads at or after the compaction
//!   point work; reads before it and watches starting before it fail with `Compacted`.
//!
//! A `LOCK` file (an advisory `flock`) keeps a second process from opening the same directory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{
    Event, EventStream, Kv, ListResult, Revision, Store, StoreError, StoreFuture, StoreResult,
};

/// Name of the write-ahead log in the data directory.
pub const WAL_FILE: &str = "wal";
/// Name of the snapshot in the data directory.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "LOCK";

const WAL_MAGIC: &[u8; 8] = b"BERTHWL1";
const SNAPSHOT_MAGIC: &[u8; 8] = b"BERTHSN1";
const FRAME_HEADER: usize = 12;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
/// Largest key or value accepted (the log frames lengths as `u32`).
const MAX_ENTRY: usize = 256 << 20;
/// A batch stops gathering records past this many bytes.
const MAX_BATCH: usize = 64 << 20;

/// Tuning of an [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Write a snapshot and truncate the log once the log is this large (or as large as the
    /// last snapshot, whichever is more). Default 64 MiB.
    pub snapshot_log_bytes: u64,
    /// How many events a watcher may fall behind before its stream ends with an error.
    /// Default 10,000.
    pub watch_backlog: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            snapshot_log_bytes: 64 << 20,
            watch_backlog: 10_000,
        }
    }
}

/// The embedded store. See the module docs for the design.
///
/// Dropping the last reference finishes the writes in flight, stops the writer thread and
/// ends every watch.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let index = read(&self.shared.index);
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.shared.dir)
            .field("revision", &index.revision)
            .field("compacted", &index.compacted)
            .field("keys", &index.keys.len())
            .finish()
    }
}

/// One version of a key.
#[derive(Debug, Clone)]
struct Version {
    mod_rev: Revision,
    create_rev: Revision,
    /// `None`: the key was deleted at `mod_rev`.
    value: Option<Arc<[u8]>>,
}

impl Version {
    fn kv(&self, key: &str) -> Option<Kv> {
        Some(Kv {
            key: key.to_string(),
            value: self.value.clone()?,
            create_revision: self.create_rev,
            mod_revision: self.mod_rev,
        })
    }
}

/// One logged write.
#[derive(Debug, Clone)]
struct Record {
    rev: Revision,
    key: Arc<str>,
    /// `Some((create revision, value))` for a put, `None` for a delete.
    put: Option<(Revision, Arc<[u8]>)>,
}

/// The applied state: what reads and watches see.
#[derive(Debug, Default)]
struct Index {
    keys: BTreeMap<Arc<str>, Vec<Version>>,
    /// The key changed at each revision after `compacted`, in order.
    history: VecDeque<(Revision, Arc<str>)>,
    revision: Revision,
    compacted: Revision,
}

impl Index {
    fn latest(&self, key: &str) -> Option<Kv> {
        self.keys.get(key)?.last()?.kv(key)
    }

    /// Applies one record; false if it cannot follow the current state (corrupt input).
    fn apply(&mut self, rec: &Record) -> bool {
        if rec.rev <= self.revision {
            return false;
        }
        let version = match &rec.put {
            Some((create_rev, value)) => Version {
                mod_rev: rec.rev,
                create_rev: *create_rev,
                value: Some(value.clone()),
            },
            None => {
                let live = self
                    .keys
                    .get(&*rec.key)
                    .and_then(|v| v.last())
                    .and_then(|v| v.value.as_ref());
                if live.is_none() {
                    return false;
                }
                Version {
                    mod_rev: rec.rev,
                    create_rev: 0,
                    value: None,
                }
            }
        };
        let key = match self.keys.get_key_value(&*rec.key) {
            Some((k, _)) => k.clone(),
            None => rec.key.clone(),
        };
        self.keys.entry(key.clone()).or_default().push(version);
        if rec.rev > self.compacted {
            self.history.push_back((rec.rev, key));
        }
        self.revision = rec.rev;
        true
    }

    /// The event of the write to `key` at `rev`, if it is retained.
    fn event_at(&self, key: &str, rev: Revision) -> Option<Event> {
        let versions = self.keys.get(key)?;
        let i = versions.binary_search_by_key(&rev, |v| v.mod_rev).ok()?;
        let prev = i.checked_sub(1).and_then(|p| versions[p].kv(key));
        match versions[i].kv(key) {
            Some(kv) => Some(Event::Put { kv, prev }),
            None => Some(Event::Delete {
                prev: prev?,
                revision: rev,
            }),
        }
    }

    /// Every retained event under `prefix` after `after`, in revision order.
    fn events_after(&self, prefix: &str, after: Revision) -> Vec<Event> {
        let start = self.history.partition_point(|(rev, _)| *rev <= after);
        self.history
            .range(start..)
            .filter(|(_, key)| key.starts_with(prefix))
            .filter_map(|(rev, key)| self.event_at(key, *rev))
            .collect()
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        rev: Revision,
    ) -> ListResult {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut items = Vec::new();
        let mut more = false;
        let range = self.keys.range::<str, _>((lower, Bound::Unbounded));
        for (key, versions) in range.take_while(|(key, _)| key.starts_with(prefix)) {
            let at = versions.partition_point(|v| v.mod_rev <= rev);
            let Some(version) = at.checked_sub(1).map(|i| &versions[i]) else {
                continue;
            };
            if version.value.is_none() {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.extend(version.kv(key));
        }
        ListResult {
            items,
            revision: rev,
            more,
        }
    }

    /// Forgets history at or before `rev`, keeping each key's latest value.
    fn compact(&mut self, rev: Revision) {
        let rev = rev.min(self.revision);
        if rev <= self.compacted {
            return;
        }
        self.keys.retain(|_, versions| {
            let at = versions.partition_point(|v| v.mod_rev <= rev);
            if let Some(newest) = at.checked_sub(1) {
                let keep_from = if versions[newest].value.is_some() {
                    newest
                } else {
                    at
                };
                versions.drain(..keep_from);
            }
            !versions.is_empty()
        });
        let drop = self.history.partition_point(|(r, _)| *r <= rev);
        self.history.drain(..drop);
        self.compacted = rev;
    }

    /// Every retained version as a record, in revision order (the snapshot body).
    fn records(&self) -> Vec<(Revision, &Arc<str>, &Version)> {
        let mut all: Vec<_> = self
            .keys
            .iter()
            .flat_map(|(key, versions)| versions.iter().map(move |v| (v.mod_rev, key, v)))
            .collect();
        all.sort_unstable_by_key(|(rev, _, _)| *rev);
        all
    }
}

/// The latest state of a key whose write is sequenced but not yet applied.
#[derive(Debug)]
struct InFlight {
    rev: Revision,
    kv: Option<Kv>,
}

type Ack = oneshot::Sender<StoreResult<()>>;

#[derive(Debug)]
enum Op {
    Write { rec: Record, ack: Ack },
    Compact { rev: Revision, ack: Ack },
}

impl Op {
    fn ack(self, result: StoreResult<()>) {
        let (Op::Write { ack, .. } | Op::Compact { ack, .. }) = self;
        let _ = ack.send(result);
    }
}

/// The sequencer: decides outcomes and revisions, queues records for the writer thread.
#[derive(Debug, Default)]
struct Sequencer {
    /// The last revision handed out.
    last: Revision,
    /// Keys written by queued or syncing writes (checked before the index).
    in_flight: HashMap<Arc<str>, InFlight>,
    queue: VecDeque<Op>,
    /// Set when the log failed: every later write fails with this message.
    failed: Option<String>,
    shutdown: bool,
}

#[derive(Debug)]
struct Watcher {
    prefix: String,
    /// Only events after this revision.
    after: Revision,
    /// The last revision queued to it.
    last: Revision,
    tx: mpsc::Sender<StoreResult<Event>>,
}

impl Watcher {
    /// Offers `event`; false when the watcher is gone or was cut off.
    fn offer(&mut self, event: &Event) -> bool {
        if event.revision() <= self.after || !event.key().starts_with(self.prefix.as_str()) {
            return !self.tx.is_closed();
        }
        if self.tx.capacity() > 1 {
            if self.tx.try_send(Ok(event.clone())).is_err() {
                return false;
            }
            self.last = event.revision();
            true
        } else {
            let behind = StoreError::Compacted {
                requested: self.last,
                compacted: event.revision(),
            };
            let _ = self.tx.try_send(Err(behind));
            false
        }
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    opts: EmbeddedOptions,
    seq: Mutex<Sequencer>,
    /// Wakes the writer thread.
    wake: Condvar,
    index: RwLock<Index>,
    watchers: Mutex<Vec<Watcher>>,
    /// Held for the store's lifetime (advisory lock on `LOCK`).
    _lock: File,
}

/// The log file as the writer thread sees it.
#[derive(Debug)]
struct Wal {
    file: File,
    len: u64,
    /// Size of the last snapshot written or loaded.
    snapshot_bytes: u64,
    /// Do not retry a failed automatic snapshot before the log reaches this size.
    retry_at: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn backend(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {err}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

// ---- encoding ----

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are checked against MAX_ENTRY before a record is built.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_record(out: &mut Vec<u8>, rev: Revision, key: &str, put: Option<(Revision, &[u8])>) {
    match put {
        Some((create_rev, value)) => {
            out.push(TAG_PUT);
            out.extend_from_slice(&rev.to_le_bytes());
            out.extend_from_slice(&create_rev.to_le_bytes());
            put_bytes(out, key.as_bytes());
            put_bytes(out, value);
        }
        None => {
            out.push(TAG_DELETE);
            out.extend_from_slice(&rev.to_le_bytes());
            put_bytes(out, key.as_bytes());
        }
    }
}

/// A cursor over encoded bytes; errors are corruption messages.
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        let end = end.ok_or_else(|| format!("record truncated at byte {}", self.pos))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn i64(&mut self) -> Result<i64, String> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn done(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn record(&mut self) -> Result<Record, String> {
        let tag = self.u8()?;
        let rev = self.i64()?;
        let create_rev = if tag == TAG_PUT {
            Some(self.i64()?)
        } else {
            None
        };
        let key = std::str::from_utf8(self.bytes()?).map_err(|_| "key is not UTF-8".to_string())?;
        let put = match (tag, create_rev) {
            (TAG_PUT, Some(create_rev)) => Some((create_rev, Arc::from(self.bytes()?))),
            (TAG_DELETE, _) => None,
            _ => return Err(format!("unknown record tag {tag}")),
        };
        Ok(Record {
            rev,
            key: Arc::from(key),
            put,
        })
    }
}

fn u32_at(data: &[u8], pos: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&data[pos..pos + 4]);
    u32::from_le_bytes(b)
}

/// The payload range of a valid frame at `pos`, and where the next frame starts.
fn frame_at(data: &[u8], pos: usize) -> Option<(std::ops::Range<usize>, usize)> {
    if data.len().saturating_sub(pos) < FRAME_HEADER {
        return None;
    }
    if crc32fast::hash(&data[pos..pos + 8]) != u32_at(data, pos + 8) {
        return None;
    }
    let len = u32_at(data, pos) as usize;
    let start = pos + FRAME_HEADER;
    let end = start
        .checked_add(len)
        .filter(|end| len > 0 && *end <= data.len())?;
    (crc32fast::hash(&data[start..end]) == u32_at(data, pos + 4)).then_some((start..end, end))
}

/// Splits a log body into frame payloads. Returns the payloads and the end of the valid
/// prefix; an invalid frame followed by a valid one is corruption (an error).
fn scan_frames(data: &[u8], start: usize) -> Result<(Vec<std::ops::Range<usize>>, usize), String> {
    let mut frames = Vec::new();
    let mut pos = start;
    while pos < data.len() {
        match frame_at(data, pos) {
            Some((payload, next)) => {
                frames.push(payload);
                pos = next;
            }
            None => {
                if let Some(valid) = (pos + 1..data.len()).find(|q| frame_at(data, *q).is_some()) {
                    return Err(format!(
                        "corrupt frame at byte {pos} followed by a valid frame at byte {valid}"
                    ));
                }
                break;
            }
        }
    }
    Ok((frames, pos))
}

/// Seals a frame whose payload follows `FRAME_HEADER` reserved bytes.
fn seal_frame(frame: &mut [u8]) {
    let len = (frame.len() - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&frame[FRAME_HEADER..]);
    frame[0..4].copy_from_slice(&len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    let header_crc = crc32fast::hash(&frame[0..8]);
    frame[8..12].copy_from_slice(&header_crc.to_le_bytes());
}

// ---- recovery ----

/// Loads the snapshot into `index`; returns its size in bytes (0 if there is none).
fn load_snapshot(path: &Path, index: &mut Index) -> StoreResult<u64> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(backend("reading snapshot", e)),
    };
    let corrupt =
        |msg: String| StoreError::Backend(format!("corrupt snapshot {}: {msg}", path.display()));
    if data.len() < 8 + 8 + 8 + 8 + 4 || &data[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt("bad header".into()));
    }
    let body = &data[..data.len() - 4];
    if crc32fast::hash(body) != u32_at(&data, data.len() - 4) {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut dec = Decoder { buf: body, pos: 8 };
    let revision = dec.i64().map_err(corrupt)?;
    let compacted = dec.i64().map_err(corrupt)?;
    let count = dec.i64().map_err(corrupt)?;
    index.compacted = compacted;
    for _ in 0..count {
        let rec = dec.record().map_err(corrupt)?;
        if rec.rev > revision || !index.apply(&rec) {
            return Err(corrupt(format!(
                "record at revision {} does not apply",
                rec.rev
            )));
        }
    }
    if !dec.done() || compacted > revision {
        return Err(corrupt("inconsistent header".into()));
    }
    index.revision = revision;
    Ok(data.len() as u64)
}

/// Opens (creating if needed) and replays the log; cuts a torn tail off.
fn open_wal(dir: &Path, index: &mut Index) -> StoreResult<(File, u64)> {
    let path = dir.join(WAL_FILE);
    if !path.exists() {
        let tmp = dir.join(format!("{WAL_FILE}.tmp"));
        let mut file = File::create(&tmp).map_err(|e| backend("creating log", e))?;
        file.write_all(WAL_MAGIC)
            .map_err(|e| backend("creating log", e))?;
        file.sync_all().map_err(|e| backend("creating log", e))?;
        fs::rename(&tmp, &path).map_err(|e| backend("creating log", e))?;
        sync_dir(dir).map_err(|e| backend("syncing data dir", e))?;
    }
    let data = fs::read(&path).map_err(|e| backend("reading log", e))?;
    let corrupt =
        |msg: String| StoreError::Backend(format!("corrupt log {}: {msg}", path.display()));
    if data.len() < WAL_MAGIC.len() || &data[..WAL_MAGIC.len()] != WAL_MAGIC {
        return Err(corrupt("bad header".into()));
    }
    let (frames, valid_end) = scan_frames(&data, WAL_MAGIC.len()).map_err(corrupt)?;
    let snapshot_rev = index.revision;
    for frame in frames {
        let mut dec = Decoder {
            buf: &data[frame],
            pos: 0,
        };
        while !dec.done() {
            let rec = dec.record().map_err(&corrupt)?;
            if rec.rev <= snapshot_rev {
                // Already in the snapshot (crash between snapshot and log truncation).
                continue;
            }
            if !index.apply(&rec) {
                return Err(corrupt(format!(
                    "record at revision {} does not apply",
                    rec.rev
                )));
            }
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| backend("opening log", e))?;
    if valid_end < data.len() {
        tracing::warn!(
            log = %path.display(),
            kept = valid_end,
            dropped = data.len() - valid_end,
            "dropping a torn write at the end of the store log"
        );
        file.set_len(valid_end as u64)
            .map_err(|e| backend("truncating log", e))?;
        file.sync_all().map_err(|e| backend("truncating log", e))?;
    }
    Ok((file, valid_end as u64))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: &Path) -> StoreResult<Arc<Self>> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`: loads the snapshot, replays the log
    /// (dropping a torn last write) and starts the writer thread. Fails if another process
    /// has the directory open or its files are corrupt.
    pub fn open_with(dir: &Path, opts: EmbeddedOptions) -> StoreResult<Arc<Self>> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| backend("creating data dir", e))?;
            // Make the new directory itself durable, not just its contents.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|e| backend("syncing data dir parent", e))?;
            }
        }
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| backend("opening lock file", e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Backend(format!(
                    "data dir {} is in use by another store",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(backend("locking data dir", e)),
        }
        remove_if_exists(&dir.join(format!("{SNAPSHOT_FILE}.tmp")))
            .map_err(|e| backend("removing temporary snapshot", e))?;

        let mut index = Index::default();
        let snapshot_bytes = load_snapshot(&dir.join(SNAPSHOT_FILE), &mut index)?;
        let (file, len) = open_wal(dir, &mut index)?;
        let wal = Wal {
            file,
            len,
            snapshot_bytes,
            retry_at: 0,
        };

        let seq = Sequencer {
            last: index.revision,
            ..Sequencer::default()
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts,
            seq: Mutex::new(seq),
            wake: Condvar::new(),
            index: RwLock::new(index),
            watchers: Mutex::new(Vec::new()),
            _lock: lock_file,
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("store-wal".into())
            .spawn(move || writer_loop(writer_shared, wal))
            .map_err(|e| backend("starting log writer", e))?;
        Ok(Arc::new(Self {
            shared,
            writer: Some(writer),
        }))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The compaction point: reads before it fail with `Compacted`.
    pub fn compacted(&self) -> Revision {
        read(&self.shared.index).compacted
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        lock(&self.shared.seq).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        lock(&self.shared.watchers).clear();
    }
}

// ---- the write path ----

/// The new state of a key decided by a write: `Some((create revision, value))` or deleted.
type NewState = Option<(Revision, Arc<[u8]>)>;

impl Shared {
    /// Sequences one write: under the sequencer lock, `decide` sees the key's latest state
    /// (including writes in flight) and the revision this write would get, and returns the
    /// key's new state and the caller's result. Returns the durability acknowledgement.
    fn submit<T>(
        &self,
        key: &str,
        decide: impl FnOnce(Option<Kv>, Revision) -> StoreResult<(NewState, T)>,
    ) -> StoreResult<(oneshot::Receiver<StoreResult<()>>, T)> {
        if key.len() > MAX_ENTRY {
            return Err(StoreError::Backend(format!(
                "key longer than {MAX_ENTRY} bytes"
            )));
        }
        let (tx, rx) = oneshot::channel();
        let mut seq = lock(&self.seq);
        if let Some(msg) = &seq.failed {
            return Err(StoreError::Backend(msg.clone()));
        }
        let current = match seq.in_flight.get(key) {
            Some(pending) => pending.kv.clone(),
            None => read(&self.index).latest(key),
        };
        let rev = seq.last + 1;
        let (put, out) = decide(current, rev)?;
        seq.last = rev;
        let key: Arc<str> = Arc::from(key);
        let kv = put.as_ref().map(|(create_rev, value)| Kv {
            key: key.to_string(),
            value: value.clone(),
            create_revision: *create_rev,
            mod_revision: rev,
        });
        seq.in_flight.insert(key.clone(), InFlight { rev, kv });
        seq.queue.push_back(Op::Write {
            rec: Record { rev, key, put },
            ack: tx,
        });
        drop(seq);
        self.wake.notify_one();
        Ok((rx, out))
    }

    /// Fails every queued and given op and refuses later writes.
    fn poison(&self, msg: String, ops: Vec<Op>) {
        tracing::error!(error = %msg, "embedded store stops accepting writes");
        let queued = {
            let mut seq = lock(&self.seq);
            seq.failed.get_or_insert_with(|| msg.clone());
            seq.in_flight.clear();
            std::mem::take(&mut seq.queue)
        };
        for op in ops.into_iter().chain(queued) {
            op.ack(Err(StoreError::Backend(msg.clone())));
        }
    }

    /// Logs, applies and acknowledges one batch.
    fn commit(&self, wal: &mut Wal, ops: Vec<Op>) {
        let mut frame = vec![0u8; FRAME_HEADER];
        let mut compact_to = None;
        for op in &ops {
            match op {
                Op::Write { rec, .. } => {
                    let put = rec.put.as_ref().map(|(c, v)| (*c, &v[..]));
                    encode_record(&mut frame, rec.rev, &rec.key, put);
                }
                Op::Compact { rev, .. } => compact_to = compact_to.max(Some(*rev)),
            }
        }
        if frame.len() > FRAME_HEADER {
            seal_frame(&mut frame);
            let written = wal
                .file
                .write_all(&frame)
                .and_then(|()| wal.file.sync_data());
            if let Err(e) = written {
                self.poison(format!("writing the store log: {e}"), ops);
                return;
            }
            wal.len += frame.len() as u64;
        }

        {
            let mut index = write(&self.index);
            let mut watchers = lock(&self.watchers);
            for op in &ops {
                if let Op::Write { rec, .. } = op {
                    let applied = index.apply(rec);
                    debug_assert!(applied, "the sequencer checked this write");
                    if !watchers.is_empty()
                        && let Some(event) = index.event_at(&rec.key, rec.rev)
                    {
                        watchers.retain_mut(|w| w.offer(&event));
                    }
                }
            }
            if let Some(rev) = compact_to {
                index.compact(rev);
            }
        }
        {
            let mut seq = lock(&self.seq);
            for op in &ops {
                if let Op::Write { rec, .. } = op
                    && seq
                        .in_flight
                        .get(&rec.key)
                        .is_some_and(|p| p.rev == rec.rev)
                {
                    seq.in_flight.remove(&rec.key);
                }
            }
        }
        let mut compactions = Vec::new();
        for op in ops {
            match op {
                Op::Write { .. } => op.ack(Ok(())),
                Op::Compact { .. } => compactions.push(op),
            }
        }

        let threshold = self
            .opts
            .snapshot_log_bytes
            .max(wal.snapshot_bytes)
            .max(wal.retry_at);
        if compactions.is_empty() && wal.len < threshold {
            return;
        }
        let result = self.snapshot(wal);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "writing a store snapshot failed");
            wal.retry_at = wal.len + self.opts.snapshot_log_bytes;
        }
        for op in compactions {
            op.ack(result.clone());
        }
    }

    /// Writes a snapshot of the index and truncates the log.
    fn snapshot(&self, wal: &mut Wal) -> StoreResult<()> {
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let written = self.write_snapshot(&tmp);
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(backend("writing snapshot", e));
            }
        };
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))
            .map_err(|e| backend("renaming snapshot", e))?;
        sync_dir(&self.dir).map_err(|e| backend("syncing data dir", e))?;
        // The snapshot holds everything logged so far: the log can start over.
        let truncated = wal
            .file
            .set_len(WAL_MAGIC.len() as u64)
            .and_then(|()| wal.file.sync_all());
        if let Err(e) = truncated {
            let msg = format!("truncating the store log: {e}");
            self.poison(msg.clone(), Vec::new());
            return Err(StoreError::Backend(msg));
        }
        wal.len = WAL_MAGIC.len() as u64;
        wal.snapshot_bytes = bytes;
        wal.retry_at = 0;
        Ok(())
    }

    fn write_snapshot(&self, path: &Path) -> io::Result<u64> {
        let file = File::create(path)?;
        let mut out = CrcWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        {
            let index = read(&self.index);
            let records = index.records();
            out.write_all(SNAPSHOT_MAGIC)?;
            out.write_all(&index.revision.to_le_bytes())?;
            out.write_all(&index.compacted.to_le_bytes())?;
            out.write_all(&(records.len() as i64).to_le_bytes())?;
            let mut buf = Vec::new();
            for (rev, key, version) in records {
                buf.clear();
                let put = version.value.as_ref().map(|v| (version.create_rev, &v[..]));
                encode_record(&mut buf, rev, key, put);
                out.write_all(&buf)?;
            }
        }
        let crc = out.crc.clone().finalize();
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes())?;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(out.len + 4)
    }
}

/// Checksums what it writes.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fails every op still queued when the writer thread ends (normally or by panic).
struct WriterExit(Arc<Shared>);

impl Drop for WriterExit {
    fn drop(&mut self) {
        let queued = {
            let mut seq = lock(&self.0.seq);
            seq.failed
                .get_or_insert_with(|| "the embedded store is closed".to_string());
            std::mem::take(&mut seq.queue)
        };
        for op in queued {
            op.ack(Err(StoreError::Backend(
                "the embedded store is closed".into(),
            )));
        }
    }
}

fn writer_loop(shared: Arc<Shared>, mut wal: Wal) {
    let _exit = WriterExit(shared.clone());
    loop {
        let ops = {
            let mut seq = lock(&shared.seq);
            while seq.queue.is_empty() {
                if seq.shutdown {
                    return;
                }
                seq = shared
                    .wake
                    .wait(seq)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let mut ops = Vec::new();
            let mut bytes = 0;
            while let Some(op) = seq.queue.pop_front() {
                if let Op::Write { rec, .. } = &op {
                    bytes += 32 + rec.key.len() + rec.put.as_ref().map_or(0, |(_, v)| v.len());
                }
                ops.push(op);
                if bytes >= MAX_BATCH {
                    break;
                }
            }
            ops
        };
        shared.commit(&mut wal, ops);
    }
}

async fn durable(ack: oneshot::Receiver<StoreResult<()>>) -> StoreResult<()> {
    ack.await
        .unwrap_or_else(|_| Err(StoreError::Backend("the embedded store is closed".into())))
}

fn check_value(value: &[u8]) -> StoreResult<()> {
    if value.len() > MAX_ENTRY {
        return Err(StoreError::Backend(format!(
            "value larger than {MAX_ENTRY} bytes"
        )));
    }
    Ok(())
}

/// A watch: buffered history first, then live events.
struct WatchStream {
    history: std::vec::IntoIter<Event>,
    live: mpsc::Receiver<StoreResult<Event>>,
}

impl futures_core::Stream for WatchStream {
    type Item = StoreResult<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(event) = this.history.next() {
            return Poll::Ready(Some(Ok(event)));
        }
        this.live.poll_recv(cx)
    }
}

impl Store for EmbeddedStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Kv>> {
        let kv = read(&self.shared.index).latest(key);
        Box::pin(std::future::ready(Ok(kv)))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> StoreFuture<'a, ListResult> {
        let index = read(&self.shared.index);
        let result = match revision {
            Some(rev) if rev > index.revision => Err(StoreError::FutureRevision {
                requested: rev,
                current: index.revision,
            }),
            Some(rev) if rev < index.compacted => Err(StoreError::Compacted {
                requested: rev,
                compacted: index.compacted,
            }),
            rev => Ok(index.list(prefix, start_after, limit, rev.unwrap_or(index.revision))),
        };
        drop(index);
        Box::pin(std::future::ready(result))
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, Kv> {
        Box::pin(async move {
            check_value(&value)?;
            let value: Arc<[u8]> = value.into();
            let (ack, kv) = self.shared.submit(key, |current, rev| {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists(key.to_string()));
                }
                let kv = Kv {
                    key: key.to_string(),
                    value: value.clone(),
                    create_revision: rev,
                    mod_revision: rev,
                };
                Ok((Some((rev, value)), kv))
            })?;
            durable(ack).await?;
            Ok(kv)
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> StoreFuture<'a, Kv> {
        Box::pin(async move {
            check_value(&value)?;
            let value: Arc<[u8]> = value.into();
            let (ack, kv) = self.shared.submit(key, |current, rev| {
                let current = check_current(key, current, expected)?;
                let kv = Kv {
                    key: key.to_string(),
                    value: value.clone(),
                    create_revision: current.create_revision,
                    mod_revision: rev,
                };
                Ok((Some((current.create_revision, value)), kv))
            })?;
            durable(ack).await?;
            Ok(kv)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> StoreFuture<'a, (Kv, Revision)> {
        Box::pin(async move {
            let (ack, deleted) = self.shared.submit(key, |current, rev| {
                let current = check_current(key, current, expected)?;
                Ok((None, (current, rev)))
            })?;
            durable(ack).await?;
            Ok(deleted)
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: Revision) -> StoreFuture<'a, EventStream> {
        let index = read(&self.shared.index);
        let result = if after < index.compacted {
            Err(StoreError::Compacted {
                requested: after,
                compacted: index.compacted,
            })
        } else {
            let history = index.events_after(prefix, after);
            let (tx, live) = mpsc::channel(self.shared.opts.watch_backlog.max(1) + 1);
            let from = after.max(index.revision);
            lock(&self.shared.watchers).push(Watcher {
                prefix: prefix.to_string(),
                after: from,
                last: from,
                tx,
            });
            let stream: EventStream = Box::pin(WatchStream {
                history: history.into_iter(),
                live,
            });
            Ok(stream)
        };
        drop(index);
        Box::pin(std::future::ready(result))
    }

    fn revision(&self) -> StoreFuture<'_, Revision> {
        let rev = read(&self.shared.index).revision;
        Box::pin(std::future::ready(Ok(rev)))
    }

    fn compact(&self, revision: Revision) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let ack = {
                let mut seq = lock(&self.shared.seq);
                if let Some(msg) = &seq.failed {
                    return Err(StoreError::Backend(msg.clone()));
                }
                if revision > seq.last {
                    return Err(StoreError::FutureRevision {
                        requested: revision,
                        current: seq.last,
                    });
                }
                if revision <= read(&self.shared.index).compacted {
                    return Ok(());
                }
                let (tx, rx) = oneshot::channel();
                seq.queue.push_back(Op::Compact {
                    rev: revision,
                    ack: tx,
                });
                rx
            };
            self.shared.wake.notify_one();
            durable(ack).await
        })
    }
}

/// Checks that `key` exists and, with `expected`, that its mod revision matches.
fn check_current(key: &str, current: Option<Kv>, expected: Option<Revision>) -> StoreResult<Kv> {
    let current = current.ok_or_else(|| StoreError::NotFound(key.to_string()))?;
    match expected {
        Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
            key: key.to_string(),
            expected,
            current: Box::new(current),
        }),
        _ => Ok(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; FRAME_HEADER];
        f.extend_from_slice(payload);
        seal_frame(&mut f);
        f
    }

    #[test]
    fn scan_accepts_whole_frames() {
        let mut data = WAL_MAGIC.to_vec();
        data.extend(frame(b"one"));
        data.extend(frame(b"two"));
        let (frames, end) = scan_frames(&data, 8).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(&data[frames[1].clone()], b"two");
        assert_eq!(end, data.len());
    }

    #[test]
    fn scan_cuts_torn_tails() {
        let mut data = WAL_MAGIC.to_vec();
        data.extend(frame(b"one"));
        let good = data.len();
        let last = frame(b"a longer second payload");
        // Cut short, zero-filled, or garbage in the header or the payload: all torn.
        for cut in [1, 5, FRAME_HEADER, last.len() - 1] {
            let mut torn = data.clone();
            torn.extend_from_slice(&last[..cut]);
            assert_eq!(scan_frames(&torn, 8).unwrap().1, good, "cut at {cut}");
        }
        let mut zeros = data.clone();
        zeros.extend(std::iter::repeat_n(0u8, 4096));
        assert_eq!(scan_frames(&zeros, 8).unwrap().1, good);
        for flip in [0, 4, 9, FRAME_HEADER + 3] {
            let mut bad = data.clone();
            let mut last = last.clone();
            last[flip] ^= 0x40;
            bad.extend(last);
            assert_eq!(scan_frames(&bad, 8).unwrap().1, good, "flip at {flip}");
        }
    }

    #[test]
    fn scan_rejects_corruption_before_valid_frames() {
        let mut data = WAL_MAGIC.to_vec();
        data.extend(frame(b"one"));
        let at = data.len() + FRAME_HEADER + 1;
        data.extend(frame(b"two"));
        data.extend(frame(b"three"));
        data[at] ^= 1;
        assert!(scan_frames(&data, 8).is_err());
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, "/a/b", Some((3, b"value")));
        encode_record(&mut buf, 8, "/a/b", None);
        let mut dec = Decoder { buf: &buf, pos: 0 };
        let put = dec.record().unwrap();
        assert_eq!((put.rev, &*put.key), (7, "/a/b"));
        assert_eq!(
            put.put.map(|(c, v)| (c, v.to_vec())),
            Some((3, b"value".to_vec()))
        );
        let del = dec.record().unwrap();
        assert_eq!((del.rev, del.put.is_none()), (8, true));
        assert!(dec.done());
    }

    #[test]
    fn compaction_keeps_latest_values() {
        let mut index = Index::default();
        let key: Arc<str> = Arc::from("/k");
        let gone: Arc<str> = Arc::from("/gone");
        let put = |rev, create, key: &Arc<str>| Record {
            rev,
            key: key.clone(),
            put: Some((create, Arc::from(&b"v"[..]))),
        };
        assert!(index.apply(&put(1, 1, &key)));
        assert!(index.apply(&put(2, 1, &key)));
        assert!(index.apply(&put(3, 3, &gone)));
        assert!(index.apply(&Record {
            rev: 4,
            key: gone.clone(),
            put: None
        }));
        assert!(!index.apply(&Record {
            rev: 5,
            key: gone.clone(),
            put: None
        }));
        assert!(index.apply(&put(5, 1, &key)));
        index.compact(4);
        assert_eq!(index.compacted, 4);
        assert_eq!(index.keys.len(), 1);
        assert_eq!(
            index.keys["/k"]
                .iter()
                .map(|v| v.mod_rev)
                .collect::<Vec<_>>(),
            vec![2, 5]
        );
        assert_eq!(
            index.history.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![5]
        );
        assert_eq!(index.list("/", None, 0, 4).items.len(), 1);
        let Some(Event::Put {
            prev: Some(prev), ..
        }) = index.event_at("/k", 5)
        else {
            panic!("expected a put with prev");
        };
        assert_eq!(prev.mod_revision, 2);
    }
}
