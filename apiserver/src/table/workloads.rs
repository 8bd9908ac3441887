//! Deployments (`NAME READY UP-TO-DATE AVAILABLE AGE`), ReplicaSets (`NAME DESIRED CURRENT
//! READY AGE`) and DaemonSets (`NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR
//! AGE`), each with wide `CONTAINERS IMAGES SELECTOR`.

use serde_json::Value;

use super::format::{
    arr_at, at, containers, int_at, labels, opt_int_at, selector, selector_or_none,
};
use super::{AGE, Column, NAME, age_at, int, name, text};

/// The wide columns every workload adds.
const CONTAINERS: Column = Column::new(
    "Containers",
    "string",
    "Names of the containers in the pod template.",
)
.wide();
const IMAGES: Column = Column::new(
    "Images",
    "string",
    "Images of the containers in the pod template.",
)
.wide();
const SELECTOR: Column = Column::new(
    "Selector",
    "string",
    "The label selector of the pods the workload manages.",
)
.wide();

/// `spec.replicas`, 1 (the default) when unset.
fn replicas(o: &Value) -> i64 {
    opt_int_at(o, &["spec", "replicas"]).unwrap_or(1)
}

/// The CONTAINERS and IMAGES cells of the pod template.
fn template_cells(o: &Value) -> [Value; 2] {
    let (names, images) = containers(arr_at(o, &["spec", "template", "spec", "containers"]));
    [text(names), text(images)]
}

/// Deployment columns.
pub(super) const DEPLOYMENT: &[Column] = &[
    NAME,
    Column::new("Ready", "string", "Ready pods out of the desired replicas."),
    Column::new(
        "Up-to-date",
        "string",
        "Pods running the latest pod template.",
    ),
    Column::new(
        "Available",
        "string",
        "Pods ready for at least minReadySeconds.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// Deployment row.
pub(super) fn deployment(o: &Value, now: i64) -> Vec<Value> {
    let ready = int_at(o, &["status", "readyReplicas"]);
    let sel = match selector(at(o, &["spec", "selector"])) {
        Ok(s) => s,
        Err(()) => "<invalid>".into(),
    };
    let [names, images] = template_cells(o);
    vec![
        name(o),
        text(format!("{ready}/{}", replicas(o))),
        int(int_at(o, &["status", "updatedReplicas"])),
        int(int_at(o, &["status", "availableReplicas"])),
        age_at(o, now),
        names,
        images,
        text(sel),
    ]
}

/// ReplicaSet columns.
pub(super) const REPLICASET: &[Column] = &[
    NAME,
    Column::new("Desired", "integer", "Replicas the spec asks for."),
    Column::new("Current", "integer", "Replicas that exist."),
    Column::new("Ready", "integer", "Replicas that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// ReplicaSet row.
pub(super) fn replicaset(o: &Value, now: i64) -> Vec<Value> {
    let [names, images] = template_cells(o);
    vec![
        name(o),
        int(replicas(o)),
        int(int_at(o, &["status", "replicas"])),
        int(int_at(o, &["status", "readyReplicas"])),
        age_at(o, now),
        names,
        images,
        text(selector_or_none(at(o, &["spec", "selector"]))),
    ]
}

/// DaemonSet columns.
pub(super) const DAEMONSET: &[Column] = &[
    NAME,
    Column::new(
        "Desired",
        "integer",
        "Nodes that should run the daemon pod.",
    ),
    Column::new(
        "Current",
        "integer",
        "Nodes running at least one daemon pod that should.",
    ),
    Column::new("Ready", "integer", "Nodes whose daemon pod is ready."),
    Column::new(
        "Up-to-date",
        "integer",
        "Nodes running the latest pod template.",
    ),
    Column::new(
        "Available",
        "integer",
        "Nodes whose daemon pod is available.",
    ),
    Column::new(
        "Node Selector",
        "string",
        "The pod template's node selector.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// DaemonSet row.
pub(super) fn daemonset(o: &Value, now: i64) -> Vec<Value> {
    let status = |field: &str| int(int_at(o, &["status", field]));
    let [names, images] = template_cells(o);
    vec![
        name(o),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        text(labels(at(o, &["spec", "template", "spec", "nodeSelector"]))),
        age_at(o, now),
        names,
        images,
        text(selector_or_none(at(o, &["spec", "selector"]))),
    ]
}
