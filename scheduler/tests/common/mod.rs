//! Builders for the nodes and pods the scheduler tests use, and a seeded RNG.

#![allow(dead_code, clippy::unwrap_used)]

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// A tiny xorshift64* generator, seeded, for reproducible tie-breaks.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A node builder: Ready, 4 CPU, 8Gi, 110 pods unless changed.
pub struct NodeB(Value);

impl NodeB {
    pub fn new(name: &str) -> Self {
        NodeB(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
    }

    pub fn alloc(mut self, resource: &str, q: &str) -> Self {
        self.0["status"]["allocatable"][resource] = json!(q);
        self
    }

    pub fn cpu(self, q: &str) -> Self {
        self.alloc("cpu", q)
    }

    pub fn memory(self, q: &str) -> Self {
        self.alloc("memory", q)
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0["metadata"]["labels"][k] = json!(v);
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let t = &mut self.0["spec"]["taints"];
        if t.is_null() {
            *t = json!([]);
        }
        let mut taint = json!({"key": key, "effect": effect});
        if !value.is_empty() {
            taint["value"] = json!(value);
        }
        t.as_array_mut().unwrap().push(taint);
        self
    }

    pub fn unschedulable(mut self) -> Self {
        self.0["spec"]["unschedulable"] = json!(true);
        self
    }

    pub fn condition(mut self, kind: &str, status: &str) -> Self {
        let conds = self.0["status"]["conditions"].as_array_mut().unwrap();
        conds.retain(|c| c["type"] != kind);
        conds.push(json!({"type": kind, "status": status}));
        self
    }

    pub fn no_conditions(mut self) -> Self {
        self.0["status"]["conditions"] = json!([]);
        self
    }

    pub fn build(self) -> Node {
        serde_json::from_value(self.0).unwrap()
    }
}

/// A pod builder: namespace `ns`, one container `c` with no requests.
pub struct PodB(Value);

impl PodB {
    pub fn new(name: &str) -> Self {
        PodB(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
    }

    pub fn request(mut self, resource: &str, q: &str) -> Self {
        self.0["spec"]["containers"][0]["resources"]["requests"][resource] = json!(q);
        self
    }

    pub fn cpu(self, q: &str) -> Self {
        self.request("cpu", q)
    }

    pub fn memory(self, q: &str) -> Self {
        self.request("memory", q)
    }

    pub fn node(mut self, node: &str) -> Self {
        self.0["spec"]["nodeName"] = json!(node);
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.0["status"]["phase"] = json!(phase);
        self
    }

    pub fn priority(mut self, p: i32) -> Self {
        self.0["spec"]["priority"] = json!(p);
        self
    }

    pub fn created(mut self, rfc3339: &str) -> Self {
        self.0["metadata"]["creationTimestamp"] = json!(rfc3339);
        self
    }

    pub fn toleration(mut self, t: Value) -> Self {
        let ts = &mut self.0["spec"]["tolerations"];
        if ts.is_null() {
            *ts = json!([]);
        }
        ts.as_array_mut().unwrap().push(t);
        self
    }

    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.0["spec"]["nodeSelector"][k] = json!(v);
        self
    }

    /// Required node affinity with these terms (each a NodeSelectorTerm object).
    pub fn required_terms(mut self, terms: Value) -> Self {
        self.0["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
            json!({"nodeSelectorTerms": terms});
        self
    }

    /// Preferred node affinity (a list of PreferredSchedulingTerm objects).
    pub fn preferred(mut self, terms: Value) -> Self {
        self.0["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] =
            terms;
        self
    }

    pub fn host_port(mut self, port: i32, protocol: &str, host_ip: &str) -> Self {
        let ports = &mut self.0["spec"]["containers"][0]["ports"];
        if ports.is_null() {
            *ports = json!([]);
        }
        let mut p = json!({"containerPort": port, "hostPort": port});
        if !protocol.is_empty() {
            p["protocol"] = json!(protocol);
        }
        if !host_ip.is_empty() {
            p["hostIP"] = json!(host_ip);
        }
        ports.as_array_mut().unwrap().push(p);
        self
    }

    pub fn spec_field(mut self, field: &str, v: Value) -> Self {
        self.0["spec"][field] = v;
        self
    }

    pub fn build(self) -> Pod {
        serde_json::from_value(self.0).unwrap()
    }
}
