//! End-to-end test fixtures for berth. Tests live in `tests/tests/`; they need root (CI is
//! root) and real system components (containerd, runc, iproute2) installed by
//! `scripts/setup`.

pub mod apiserver;
pub mod cluster;
pub mod etcd;
pub mod node;

/// Fails the calling test with a clear message unless it runs as root.
pub fn require_root() {
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| {
                    v.split_whitespace()
                        .nth(1)
                        .and_then(|x| x.parse::<u32>().ok())
                })
        });
    assert_eq!(
        euid,
        Some(0),
        "this test drives a real containerd and network namespaces: run it as root"
    );
}

/// Polls `f` every 200 ms until it returns Some (its value is returned), failing the test
/// with `what` after `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
