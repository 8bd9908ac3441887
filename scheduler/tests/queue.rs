//! The scheduling queue: order, back-off timing, unschedulable pods and cluster events.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::PodB;
use scheduler::queue::{ClusterEvent, PodState, SchedulingQueue};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn drain(q: &mut SchedulingQueue, now: Instant) -> Vec<String> {
    std::iter::from_fn(|| q.pop(now)).collect()
}

#[test]
fn priority_then_age() {
    let t = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("low-old").priority(-5).build(), t);
    q.add(PodB::new("default-old").build(), t + ms(1));
    q.add(PodB::new("high").priority(1000).build(), t + ms(2));
    q.add(PodB::new("default-new").build(), t + ms(3));
    q.add(PodB::new("high-new").priority(1000).build(), t + ms(4));
    assert_eq!(
        drain(&mut q, t + secs(1)),
        [
            "ns/high",
            "ns/high-new",
            "ns/default-old",
            "ns/default-new",
            "ns/low-old"
        ]
    );
}

#[test]
fn pods_listed_together_go_by_creation_time_then_name() {
    // At start-up every pending pod is added at the same instant.
    let t = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("c").created("2024-01-01T00:00:03Z").build(), t);
    q.add(PodB::new("b").created("2024-01-01T00:00:01Z").build(), t);
    q.add(PodB::new("a").created("2024-01-01T00:00:03Z").build(), t);
    q.add(PodB::new("z").created("2024-01-01T00:00:02Z").build(), t);
    assert_eq!(drain(&mut q, t), ["ns/b", "ns/z", "ns/a", "ns/c"]);
}

#[test]
fn backoff_timing() {
    let t0 = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("p").build(), t0);
    let mut now = t0;
    // Each attempt fails with a cluster event in between (so the pod backs off rather than
    // waiting as unschedulable): 1s, 2s, 4s, 8s, then 10s.
    for (attempt, expect) in [1u64, 2, 4, 8, 10, 10].into_iter().enumerate() {
        let key = q.pop(now).expect("pod is due");
        assert_eq!(q.attempts(&key), Some(attempt as u32 + 1));
        q.move_all_to_active_or_backoff(ClusterEvent::NodeUpdated, now);
        assert!(q.failed(&key, now));
        assert_eq!(q.state(&key), Some(PodState::Backoff));
        assert_eq!(q.backoff_until(&key), Some(now + secs(expect)));
        assert_eq!(q.next_wakeup(), Some(now + secs(expect)));
        assert_eq!(q.pop(now + secs(expect) - ms(1)), None, "attempt {attempt}");
        now += secs(expect);
    }
    assert_eq!(q.pop(now).as_deref(), Some("ns/p"));
    assert!(q.done("ns/p").is_some());
    assert!(q.is_empty());
}

#[test]
fn unschedulable_waits_for_an_event() {
    let t0 = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("p").build(), t0);
    let key = q.pop(t0).unwrap();
    assert!(q.failed(&key, t0));
    assert_eq!(q.state(&key), Some(PodState::Unschedulable));
    // Its back-off has long run out, but nothing changed: it stays put.
    assert_eq!(q.pop(t0 + secs(60)), None);
    assert_eq!(q.next_wakeup(), Some(t0 + secs(300)));
    // A node appears: straight to active, since the 1 s back-off is over.
    assert_eq!(
        q.move_all_to_active_or_backoff(ClusterEvent::NodeAdded, t0 + secs(60)),
        1
    );
    assert_eq!(q.state(&key), Some(PodState::Active));
    let key = q.pop(t0 + secs(60)).unwrap();
    // Second failure: 2 s back-off. An event 500 ms later moves it to back-off, not active.
    let t1 = t0 + secs(61);
    assert!(q.failed(&key, t1));
    assert_eq!(q.state(&key), Some(PodState::Unschedulable));
    q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDeleted, t1 + ms(500));
    assert_eq!(q.state(&key), Some(PodState::Backoff));
    assert_eq!(q.pop(t1 + ms(1999)), None);
    assert_eq!(q.pop(t1 + secs(2)).as_deref(), Some("ns/p"));
}

#[test]
fn unschedulable_pods_are_retried_after_five_minutes() {
    let t0 = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("p").build(), t0);
    let key = q.pop(t0).unwrap();
    q.failed(&key, t0);
    assert_eq!(q.pop(t0 + secs(299)), None);
    assert_eq!(q.pop(t0 + secs(300)).as_deref(), Some("ns/p"));
}

#[test]
fn event_during_the_attempt_sends_the_failure_to_backoff() {
    let t0 = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("a").build(), t0);
    q.add(PodB::new("b").build(), t0 + ms(1));
    // An event before the pop does not count for the attempt.
    q.move_all_to_active_or_backoff(ClusterEvent::NodeAdded, t0);
    let a = q.pop(t0).unwrap();
    q.move_all_to_active_or_backoff(ClusterEvent::NodeUpdated, t0);
    let b = q.pop(t0).unwrap();
    q.failed(&a, t0);
    q.failed(&b, t0);
    assert_eq!(
        q.state(&a),
        Some(PodState::Backoff),
        "event came after a was popped"
    );
    assert_eq!(
        q.state(&b),
        Some(PodState::Unschedulable),
        "event came before b was popped"
    );
    assert_eq!(q.count(PodState::Backoff), 1);
    assert_eq!(q.count(PodState::Unschedulable), 1);
}

#[test]
fn failed_pod_goes_behind_waiting_pods_of_its_priority() {
    let t0 = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("first").build(), t0);
    q.add(PodB::new("second").build(), t0 + ms(10));
    let first = q.pop(t0 + ms(20)).unwrap();
    q.move_all_to_active_or_backoff(ClusterEvent::NodeAdded, t0 + ms(20));
    q.failed(&first, t0 + ms(20));
    // After its back-off, "first" queues by its failure time, behind "second".
    assert_eq!(drain(&mut q, t0 + secs(2)), ["ns/second", "ns/first"]);
}

#[test]
fn updates_and_deletes() {
    let t0 = Instant::now();
    let mut q = SchedulingQueue::new();
    q.add(PodB::new("p").build(), t0);
    let key = q.pop(t0).unwrap();
    // Deleted while in flight: the failure report finds nothing.
    assert!(q.delete(&key).is_some());
    assert!(!q.failed(&key, t0));
    // An unschedulable pod whose spec changes is retried.
    q.add(PodB::new("p").build(), t0);
    let key = q.pop(t0).unwrap();
    q.failed(&key, t0);
    q.update(PodB::new("p").priority(5).build(), t0 + secs(5));
    assert_eq!(q.state(&key), Some(PodState::Active));
    assert_eq!(
        q.pod(&key).unwrap().spec.as_ref().unwrap().priority,
        Some(5)
    );
    // A spec change while in flight: the failure goes to back-off.
    let key = q.pop(t0 + secs(5)).unwrap();
    q.update(PodB::new("p").node_selector("a", "b").build(), t0 + secs(5));
    assert_eq!(q.state(&key), Some(PodState::InFlight));
    q.failed(&key, t0 + secs(6));
    assert_eq!(q.state(&key), Some(PodState::Backoff));
}
