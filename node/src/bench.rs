//! Raw-CRI pod start benchmark: the time from RunPodSandbox to a container observed
//! Running, driving containerd directly. This is the floor a kubelet's pod start latency is
//! compared to.

use std::time::{Duration, Instant};

use cri::api;

use crate::LocalNode;
use crate::error::Result;

/// Latencies of one benchmark run.
#[derive(Debug, Clone, Default)]
pub struct PodStartReport {
    /// RunPodSandbox -> container Running, per pod.
    pub total: Vec<Duration>,
    /// RunPodSandbox call alone, per pod.
    pub run_sandbox: Vec<Duration>,
    /// CreateContainer call alone, per pod.
    pub create: Vec<Duration>,
    /// StartContainer call alone, per pod.
    pub start: Vec<Duration>,
}

/// Nearest-rank percentile (`p` in 0..=100) of `samples`; zero when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Starts `pods` pods one after another (sandbox + one busybox container each), timing each
/// from RunPodSandbox until ContainerStatus reports Running, then removes them all.
/// `progress` is called after each pod with its index and latency.
pub async fn cri_pod_start(
    node: &LocalNode,
    pods: usize,
    mut progress: impl FnMut(usize, Duration),
) -> Result<PodStartReport> {
    let cri = node.cri();
    let mut report = PodStartReport::default();
    let mut sandboxes = Vec::with_capacity(pods);
    for i in 0..pods {
        let sandbox = node.sandbox_config(&format!("bench-{i}"));
        let container = node.busybox("main", "exec sleep 3600");
        let t0 = Instant::now();
        let pod = cri.run_pod_sandbox(sandbox.clone(), "").await?;
        let t1 = Instant::now();
        sandboxes.push(pod.clone());
        let id = cri.create_container(&pod, container, sandbox).await?;
        let t2 = Instant::now();
        cri.start_container(&id).await?;
        let t3 = Instant::now();
        while cri.container_status(&id).await?.state != api::ContainerState::ContainerRunning as i32
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let total = t0.elapsed();
        report.run_sandbox.push(t1 - t0);
        report.create.push(t2 - t1);
        report.start.push(t3 - t2);
        report.total.push(total);
        progress(i, total);
    }
    for pod in sandboxes {
        cri.stop_pod_sandbox(&pod).await?;
        cri.remove_pod_sandbox(&pod).await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Duration::from_millis(10));
        assert_eq!(percentile(&ms, 99.0), Duration::from_millis(20));
        assert_eq!(percentile(&ms, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
