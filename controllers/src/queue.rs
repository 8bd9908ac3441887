//! A deduplicating work queue of object keys (`namespace/name`), as client-go's: a key added
//! while queued is not queued twice, a key added while being processed is processed again
//! afterwards, and keys can be delayed (`add_after`) for requeues and back-off.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    dirty_while_processing: HashSet<String>,
}

/// A work queue shared by producers (watch handlers) and one worker.
#[derive(Debug, Clone, Default)]
pub struct WorkQueue {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<tokio::sync::Notify>,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is already queued.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut q = self.lock();
        if q.processing.contains(&key) {
            q.dirty_while_processing.insert(key);
            return;
        }
        if q.queued.insert(key.clone()) {
            q.queue.push_back(key);
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.add(key);
        });
    }

    /// Waits for the next key; it is "processing" until [`WorkQueue::done`].
    pub async fn next(&self) -> String {
        loop {
            {
                let mut q = self.lock();
                if let Some(key) = q.queue.pop_front() {
                    q.queued.remove(&key);
                    q.processing.insert(key.clone());
                    return key;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Marks `key` processed; it is queued again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut q = self.lock();
        q.processing.remove(key);
        if q.dirty_while_processing.remove(key) && q.queued.insert(key.to_string()) {
            q.queue.push_back(key.to_string());
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Keys waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedupes_and_requeues_keys_added_while_processing() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.next().await;
        assert_eq!(k, "a");
        q.add("a"); // while processing
        assert_eq!(q.len(), 1);
        q.done("a");
        assert_eq!(q.next().await, "b");
        assert_eq!(q.next().await, "a");
    }
}
