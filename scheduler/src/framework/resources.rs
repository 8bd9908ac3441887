//! Resource arithmetic: what a pod requests and what a node offers, in exact integer units
//! (milli-CPU, bytes, a pod count), following upstream's `PodRequests` rules.
//!
//! A pod's request is `max(sum of app containers + sidecars, the largest init step) +
//! spec.overhead`, where an init step is one init container plus the sidecars
//! (`restartPolicy: Always` init containers) started before it; a sidecar's own step is the
//! running sum of sidecars so far. Pod-level `spec.resources` (alpha in 1.33, off by default)
//! is not read.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubeutil::quantity::{quantity_milli, quantity_value};

/// The CPU request (milli-CPU) scoring assumes for a container that sets none, as upstream.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;

/// The memory request (bytes) scoring assumes for a container that sets none (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for. Arithmetic saturates rather than
/// overflowing, since quantities come from untrusted objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// CPU in milli-cores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Local ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// A number of pods.
    pub pods: i64,
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn milli(q: &Quantity) -> i64 {
    quantity_milli(&q.0).map_or(0, clamp)
}

fn value(q: &Quantity) -> i64 {
    quantity_value(&q.0).map_or(0, clamp)
}

impl Resources {
    /// Nothing.
    pub const ZERO: Resources = Resources {
        milli_cpu: 0,
        memory: 0,
        ephemeral_storage: 0,
        pods: 0,
    };

    /// Reads a resource list (`requests`, `overhead`, `allocatable`): `cpu` in milli-units,
    /// `memory`, `ephemeral-storage` and `pods` in whole units rounded up. Other resources
    /// and quantities that do not parse count as zero.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        Resources {
            milli_cpu: list.get("cpu").map_or(0, milli),
            memory: list.get("memory").map_or(0, value),
            ephemeral_storage: list.get("ephemeral-storage").map_or(0, value),
            pods: list.get("pods").map_or(0, value),
        }
    }

    /// The larger of each resource.
    pub fn max(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(other.milli_cpu),
            memory: self.memory.max(other.memory),
            ephemeral_storage: self.ephemeral_storage.max(other.ephemeral_storage),
            pods: self.pods.max(other.pods),
        }
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_add(o.milli_cpu),
            memory: self.memory.saturating_add(o.memory),
            ephemeral_storage: self.ephemeral_storage.saturating_add(o.ephemeral_storage),
            pods: self.pods.saturating_add(o.pods),
        }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_sub(o.milli_cpu),
            memory: self.memory.saturating_sub(o.memory),
            ephemeral_storage: self.ephemeral_storage.saturating_sub(o.ephemeral_storage),
            pods: self.pods.saturating_sub(o.pods),
        }
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, o: Resources) {
        *self = *self - o;
    }
}

/// One container's requests. A resource missing from `requests` but present in `limits`
/// takes the limit, which is what API defaulting stores; with `non_zero`, a missing CPU or
/// memory request counts as the scoring defaults.
fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let get = |name: &str| {
        requests
            .and_then(|m| m.get(name))
            .or_else(|| limits.and_then(|m| m.get(name)))
    };
    let default_if = |d: i64| if non_zero { d } else { 0 };
    Resources {
        milli_cpu: get("cpu").map_or(default_if(DEFAULT_MILLI_CPU_REQUEST), milli),
        memory: get("memory").map_or(default_if(DEFAULT_MEMORY_REQUEST), value),
        ephemeral_storage: get("ephemeral-storage").map_or(0, value),
        pods: 0,
    }
}

/// Whether an init container is a sidecar (`restartPolicy: Always`): it keeps running
/// beside the app containers.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources {
            pods: 1,
            ..Resources::ZERO
        };
    };
    let mut running = Resources::ZERO;
    for c in &spec.containers {
        running += container_requests(c, non_zero);
    }
    let mut sidecars = Resources::ZERO;
    let mut init_peak = Resources::ZERO;
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if is_sidecar(c) {
            running += r;
            sidecars += r;
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(r + sidecars);
        }
    }
    let mut total = running.max(init_peak);
    if let Some(overhead) = &spec.overhead {
        total += Resources::from_list(overhead);
    }
    total.pods = 1;
    total
}

/// What a pod requests, as the filter counts it: the larger of the running containers
/// (app containers plus sidecars) and the peak of the init sequence, plus the pod overhead;
/// `pods` is 1.
pub fn pod_requests(pod: &Pod) -> Resources {
    requests(pod, false)
}

/// [`pod_requests`] with each container's missing CPU and memory request counted as
/// [`DEFAULT_MILLI_CPU_REQUEST`] and [`DEFAULT_MEMORY_REQUEST`]: what the least-allocated
/// score counts, so that pods without requests still spread.
pub fn pod_requests_non_zero(pod: &Pod) -> Resources {
    requests(pod, true)
}

/// What a node offers to pods: `status.allocatable` (zero when the kubelet has not reported
/// it, so nothing fits).
pub fn node_allocatable(node: &Node) -> Resources {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn sums_containers() {
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "0.25", "ephemeral-storage": "1Ki"}}}
        ]}));
        assert_eq!(
            pod_requests(&p),
            Resources {
                milli_cpu: 350,
                memory: 1 << 20,
                ephemeral_storage: 1024,
                pods: 1
            }
        );
    }

    #[test]
    fn init_containers_take_the_max() {
        let p = pod(json!({
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}
            ],
            "containers": [
                {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}}
            ],
            "overhead": {"cpu": "250m", "memory": "1M"}
        }));
        let r = pod_requests(&p);
        assert_eq!(r.milli_cpu, 3250);
        assert_eq!(r.memory, 3_001_000_000);
        assert_eq!(r.pods, 1);
    }

    #[test]
    fn sidecars_add_to_running_and_later_init_steps() {
        let p = pod(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "1"}}}
            ],
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "200m"}}}]
        }));
        // Running: 200m + 500m; the init step: 1 + 500m (the sidecar already runs).
        assert_eq!(pod_requests(&p).milli_cpu, 1500);
        let p = pod(json!({
            "initContainers": [
                {"name": "init", "resources": {"requests": {"cpu": "1"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}}
            ],
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "200m"}}}]
        }));
        // The init container ran before the sidecar started.
        assert_eq!(pod_requests(&p).milli_cpu, 1000);
    }

    #[test]
    fn limits_stand_in_and_non_zero_defaults() {
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b"}
        ]}));
        assert_eq!(pod_requests(&p).milli_cpu, 1000);
        let nz = pod_requests_non_zero(&p);
        assert_eq!(nz.milli_cpu, 1100);
        assert_eq!(nz.memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
        assert_eq!(pod_requests(&pod(json!({"containers": []}))).pods, 1);
    }

    #[test]
    fn allocatable() {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "1500m", "memory": "2Gi", "pods": "110", "ephemeral-storage": "bad"}}}))
        .unwrap();
        assert_eq!(
            node_allocatable(&n),
            Resources {
                milli_cpu: 1500,
                memory: 2 << 30,
                ephemeral_storage: 0,
                pods: 110
            }
        );
        let huge = Resources::from_list(
            &[("memory".to_string(), Quantity("9E".to_string()))]
                .into_iter()
                .collect(),
        );
        assert_eq!((huge + huge).memory, i64::MAX);
    }
}
