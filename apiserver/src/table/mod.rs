//! Server-side `Table` output (meta.k8s.io/v1) for `kubectl get`: upstream's columns per kind.
//!
//! Each served kind has its column definitions (name, type, format, description, priority) and
//! a function from a stored object to the row's cells, after kubectl's human-readable printers.
//! Like upstream's server-side conversion, every row carries the cells of all columns; kubectl
//! hides the priority-1 columns unless asked for `-o wide`. Kinds without a printer get `Name`
//! and `Age`. Objects are untyped JSON: a missing field or one of the wrong type prints as the
//! empty value, never a panic.

mod cluster;
mod config;
mod format;
mod network;
mod pod;
mod storage;
mod workloads;

use serde_json::{Map, Value, json};

use crate::object;
use crate::registry::Resource;
use crate::store::Revision;

/// One column of a kind's table.
#[derive(Debug, Clone, Copy)]
struct Column {
    /// Header; kubectl upper-cases it.
    name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, ...
    ty: &'static str,
    /// Format hint; `name` marks the column holding the object's name.
    format: &'static str,
    /// What the column shows.
    description: &'static str,
    /// 0 for the default view, 1 for the `-o wide` additions.
    priority: u8,
}

impl Column {
    /// A default-view column.
    const fn new(name: &'static str, ty: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty,
            format: "",
            description,
            priority: 0,
        }
    }

    /// The same column, shown only with `-o wide`.
    const fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }

    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The object's name.
const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: "Name of the object, unique among objects of its kind in its namespace.",
    priority: 0,
};

/// Time since creation.
const AGE: Column = Column::new(
    "Age",
    "string",
    "Time since the object was created (metadata.creationTimestamp).",
);

/// The cells of one row, given the object and the current time in seconds since the epoch.
type Cells = fn(&Value, i64) -> Vec<Value>;

/// The columns of a kind and its row function.
fn printer(r: &Resource) -> (&'static [Column], Cells) {
    match (r.group, r.kind) {
        ("", "Namespace") => (cluster::NAMESPACE, cluster::namespace),
        ("", "Pod") => (pod::COLUMNS, pod::cells),
        ("", "Service") => (network::SERVICE, network::service),
        ("", "Endpoints") => (network::ENDPOINTS, network::endpoints),
        ("", "Node") => (cluster::NODE, cluster::node),
        ("", "ConfigMap") => (config::CONFIGMAP, config::configmap),
        ("", "Secret") => (config::SECRET, config::secret),
        ("", "Event") => (cluster::EVENT, cluster::event),
        ("", "ServiceAccount") => (config::SERVICEACCOUNT, config::serviceaccount),
        ("", "PersistentVolume") => (storage::PV, storage::pv),
        ("", "PersistentVolumeClaim") => (storage::PVC, storage::pvc),
        ("apps", "Deployment") => (workloads::DEPLOYMENT, workloads::deployment),
        ("apps", "ReplicaSet") => (workloads::REPLICASET, workloads::replicaset),
        ("apps", "DaemonSet") => (workloads::DAEMONSET, workloads::daemonset),
        ("discovery.k8s.io", "EndpointSlice") => (network::ENDPOINTSLICE, network::endpointslice),
        ("coordination.k8s.io", "Lease") => (cluster::LEASE, cluster::lease),
        _ => (DEFAULT, default_cells),
    }
}

/// Columns of kinds without a printer of their own.
const DEFAULT: &[Column] = &[NAME, AGE];

fn default_cells(o: &Value, now: i64) -> Vec<Value> {
    vec![name(o), age_at(o, now)]
}

/// A Table of `objs`. `include_object` is the `includeObject` query parameter (`None`,
/// `Metadata` (default) or `Object`).
pub fn table(
    r: &Resource,
    objs: &[Value],
    rv: Revision,
    cont: Option<&str>,
    include_object: Option<&str>,
) -> Value {
    let (columns, cells) = printer(r);
    let now = object::now_secs();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => o.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata"),
                }),
            };
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells(o, now)));
            if r.group.is_empty()
                && r.kind == "Pod"
                && let Some(c) = pod::conditions(o)
            {
                row.insert("conditions".into(), c);
            }
            row.insert("object".into(), object);
            Value::Object(row)
        })
        .collect();
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if let Some(c) = cont.filter(|c| !c.is_empty()) {
        meta["continue"] = json!(c);
    }
    let columns: Vec<Value> = columns.iter().map(|c| c.to_json()).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Upstream's short age format (`5s`, `3m2s`, `4h`, `2d3h`, `12d`, `3y`).
pub fn age(obj: &Value) -> String {
    since(
        object::meta_str(obj, "creationTimestamp"),
        object::now_secs(),
    )
}

/// Formats seconds as kubectl does.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60).replace("m0s", "m"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60).replace("h0m", "h"),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, s % 86400 / 3600).replace("d0h", "d"),
        s if s < 2 * 365 * 86400 => format!("{}d", s / 86400),
        s if s < 8 * 365 * 86400 => {
            format!("{}y{}d", s / (365 * 86400), s % (365 * 86400) / 86400).replace("y0d", "y")
        }
        s => format!("{}y", s / (365 * 86400)),
    }
}

/// Time since an RFC 3339 timestamp, `<unknown>` when missing or unparsable.
fn since(ts: Option<&str>, now: i64) -> String {
    match ts.and_then(object::parse_rfc3339) {
        Some(t) => human_duration(now.saturating_sub(t)),
        None => "<unknown>".into(),
    }
}

/// The Name cell.
fn name(o: &Value) -> Value {
    text(object::name(o))
}

/// The Age cell.
fn age_at(o: &Value, now: i64) -> Value {
    text(since(object::meta_str(o, "creationTimestamp"), now))
}

/// A string cell.
fn text(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// An integer cell.
fn int(n: i64) -> Value {
    Value::from(n)
}

/// Whether `metadata.deletionTimestamp` is set.
fn deleting(o: &Value) -> bool {
    object::meta(o)
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}
