//! Leader election over a Lease in a real `berth apiserver`: one of two instances acts; when
//! it stops renewing, the other takes over within the lease duration.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use daemon::leader::{LeaderConfig, run_as_leader};
use tests::apiserver::TestApiserver;

fn cfg(identity: &str) -> LeaderConfig {
    let mut c = LeaderConfig::new("test-lease");
    c.identity = identity.into();
    c.lease_duration = Duration::from_secs(2);
    c.renew_deadline = Duration::from_millis(1500);
    c.retry_period = Duration::from_millis(200);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_and_the_other_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestApiserver::start_in(dir.path(), 0).unwrap();
    let client = server.client().await.unwrap();
    let acting = Arc::new(AtomicUsize::new(0));
    let max_acting = Arc::new(AtomicUsize::new(0));

    let work = |name: &'static str, acting: Arc<AtomicUsize>, max: Arc<AtomicUsize>| async move {
        let now = acting.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        tracing::info!(name, "acting");
        std::future::pending::<()>().await;
    };
    let a = tokio::spawn(run_as_leader(
        client.clone(),
        cfg("a"),
        work("a", acting.clone(), max_acting.clone()),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = tokio::spawn(run_as_leader(
        client.clone(),
        cfg("b"),
        work("b", acting.clone(), max_acting.clone()),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        acting.load(Ordering::SeqCst),
        1,
        "exactly one instance acts"
    );

    // The leader dies (stops renewing); the other acquires within the lease duration.
    a.abort();
    let _ = a.await;
    acting.fetch_sub(1, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while acting.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(acting.load(Ordering::SeqCst), 1, "b took over");
    assert_eq!(max_acting.load(Ordering::SeqCst), 1, "never two at once");
    let lease: k8s_openapi::api::coordination::v1::Lease =
        kube::Api::namespaced(client, "kube-system")
            .get("test-lease")
            .await
            .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b.abort();
}
