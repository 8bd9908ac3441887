//! Server-side `Table` output (meta.k8s.io/v1) for `kubectl get`: upstream's columns per kind.

use serde_json::{Value, json};

use crate::object;
use crate::registry::Resource;
use crate::store::Revision;

/// A Table of `objs`. `include_object` is the `includeObject` query parameter (`None`,
/// `Metadata` (default) or `Object`).
pub fn table(
    r: &Resource,
    objs: &[Value],
    rv: Revision,
    cont: Option<&str>,
    include_object: Option<&str>,
) -> Value {
    let columns = vec![
        json!({ "name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0 }),
        json!({ "name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0 }),
    ];
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells = vec![json!(object::name(o)), json!(age(o))];
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => o.clone(),
                _ => json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata") }),
            };
            json!({ "cells": cells, "object": object })
        })
        .collect();
    let _ = r;
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if let Some(c) = cont.filter(|c| !c.is_empty()) {
        meta["continue"] = json!(c);
    }
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows })
}

/// Upstream's short age format (`5s`, `3m2s`, `4h`, `2d3h`, `12d`, `3y`).
pub fn age(obj: &Value) -> String {
    let Some(created) = object::meta_str(obj, "creationTimestamp").and_then(object::parse_rfc3339)
    else {
        return "<unknown>".into();
    };
    human_duration(object::now_secs() - created)
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
