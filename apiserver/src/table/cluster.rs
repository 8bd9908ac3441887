//! Namespaces (`NAME STATUS AGE`), Nodes (`NAME STATUS ROLES AGE VERSION`, wide `INTERNAL-IP
//! EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME`), Events (`LAST SEEN TYPE REASON
//! OBJECT MESSAGE`, wide `SUBOBJECT SOURCE FIRST SEEN COUNT NAME`) and Leases (`NAME HOLDER
//! AGE`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::format::{arr_at, at, has_obj, nonempty_at, opt_int_at, or, str_at};
use super::{AGE, Column, NAME, age_at, int, name, since, text};
use crate::object;

/// Namespace columns.
pub(super) const NAMESPACE: &[Column] = &[
    NAME,
    Column::new(
        "Status",
        "string",
        "The namespace's phase: Active, or Terminating while its contents are deleted.",
    ),
    AGE,
];

/// Namespace row.
pub(super) fn namespace(o: &Value, now: i64) -> Vec<Value> {
    vec![
        name(o),
        text(str_at(o, &["status", "phase"])),
        age_at(o, now),
    ]
}

/// Node columns.
pub(super) const NODE: &[Column] = &[
    NAME,
    Column::new(
        "Status",
        "string",
        "Whether the node is Ready, and SchedulingDisabled when cordoned.",
    ),
    Column::new(
        "Roles",
        "string",
        "Roles from the node's node-role.kubernetes.io/<role> labels.",
    ),
    AGE,
    Column::new("Version", "string", "The kubelet's version."),
    Column::new(
        "Internal-IP",
        "string",
        "The node's first InternalIP address.",
    )
    .wide(),
    Column::new(
        "External-IP",
        "string",
        "The node's first ExternalIP address.",
    )
    .wide(),
    Column::new(
        "OS-Image",
        "string",
        "The operating system image the node reports.",
    )
    .wide(),
    Column::new("Kernel-Version", "string", "The node's kernel version.").wide(),
    Column::new(
        "Container-Runtime",
        "string",
        "The container runtime and its version.",
    )
    .wide(),
];

/// Node row.
pub(super) fn node(o: &Value, now: i64) -> Vec<Value> {
    // The last Ready condition wins, as a map keyed by type would have it.
    let ready = arr_at(o, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if at(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }

    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = object::meta(o).get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str().filter(|v| !v.is_empty())
            {
                roles.insert(v);
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };

    let address = |ty: &str| {
        arr_at(o, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == ty)
            .map(|a| str_at(a, &["address"]).to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |field: &str| or(str_at(o, &["status", "nodeInfo", field]), "<unknown>");
    vec![
        name(o),
        text(status),
        text(roles),
        age_at(o, now),
        text(str_at(o, &["status", "nodeInfo", "kubeletVersion"])),
        text(address("InternalIP")),
        text(address("ExternalIP")),
        text(info("osImage")),
        text(info("kernelVersion")),
        text(info("containerRuntimeVersion")),
    ]
}

/// Event columns.
pub(super) const EVENT: &[Column] = &[
    Column::new(
        "Last Seen",
        "string",
        "Time since the event was last observed.",
    ),
    Column::new("Type", "string", "Normal or Warning."),
    Column::new(
        "Reason",
        "string",
        "A short, machine-readable cause of the event.",
    ),
    Column::new(
        "Object",
        "string",
        "The object the event is about, as kind/name.",
    ),
    Column::new(
        "Subobject",
        "string",
        "The part of the object the event is about, such as a container.",
    )
    .wide(),
    Column::new(
        "Source",
        "string",
        "The component (and host) that reported the event.",
    )
    .wide(),
    Column::new(
        "Message",
        "string",
        "A human-readable description of the event.",
    ),
    Column::new(
        "First Seen",
        "string",
        "Time since the event was first observed.",
    )
    .wide(),
    Column::new("Count", "string", "How many times the event occurred.").wide(),
    Column {
        priority: 1,
        ..NAME
    },
];

/// Event row.
pub(super) fn event(o: &Value, now: i64) -> Vec<Value> {
    let first = match nonempty_at(o, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(nonempty_at(o, &["eventTime"]), now),
    };
    let mut last = match nonempty_at(o, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = opt_int_at(o, &["count"]).unwrap_or(0);
    if has_obj(o, &["series"]) {
        last = since(nonempty_at(o, &["series", "lastObservedTime"]), now);
        count = opt_int_at(o, &["series", "count"]).unwrap_or(0);
    } else if count == 0 {
        // Events of the events.k8s.io API that happened once carry no count.
        count = 1;
    }
    let kind = str_at(o, &["involvedObject", "kind"]).to_lowercase();
    let target = match nonempty_at(o, &["involvedObject", "name"]) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component = nonempty_at(o, &["source", "component"])
        .unwrap_or_else(|| str_at(o, &["reportingComponent"]));
    let host =
        nonempty_at(o, &["source", "host"]).unwrap_or_else(|| str_at(o, &["reportingInstance"]));
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        text(last),
        text(str_at(o, &["type"])),
        text(str_at(o, &["reason"])),
        text(target),
        text(str_at(o, &["involvedObject", "fieldPath"])),
        text(source),
        text(str_at(o, &["message"]).trim()),
        text(first),
        int(count),
        name(o),
    ]
}

/// Lease columns.
pub(super) const LEASE: &[Column] = &[
    NAME,
    Column::new(
        "Holder",
        "string",
        "The identity currently holding the lease.",
    ),
    AGE,
];

/// Lease row.
pub(super) fn lease(o: &Value, now: i64) -> Vec<Value> {
    vec![
        name(o),
        text(str_at(o, &["spec", "holderIdentity"])),
        age_at(o, now),
    ]
}
