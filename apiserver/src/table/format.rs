//! Shape-tolerant field access over stored JSON objects, and the text forms kubectl's printers
//! share: label maps, label selectors, access modes, container lists, host:port pairs and
//! "a,b,c + N more..." lists. Every accessor falls back to an empty value on a missing field or
//! one of the wrong type.

use serde_json::{Map, Value};

/// The value at `path` (object keys), if every step exists.
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key))
}

/// The string at `path`, or `""`.
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` if it is a non-empty string.
pub(super) fn nonempty_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The integer at `path`, if it is a number (floats truncate, out-of-range values saturate).
pub(super) fn opt_int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let n = at(v, path)?;
    n.as_i64()
        .or_else(|| n.as_u64().map(|_| i64::MAX))
        .or_else(|| n.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or 0.
pub(super) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int_at(v, path).unwrap_or(0)
}

/// The array at `path`, or an empty slice.
pub(super) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at `path`, if it is one.
pub(super) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

/// Whether `path` holds an object (a set pointer field upstream).
pub(super) fn has_obj(v: &Value, path: &[&str]) -> bool {
    obj_at(v, path).is_some()
}

/// `s`, or `default` when empty.
pub(super) fn or(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_string()
}

/// A scalar as text: strings as they are, numbers and booleans in JSON form, anything else empty.
pub(super) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A quantity field (`10Gi`) as text; a missing one prints as the zero quantity, `0`.
pub(super) fn quantity(v: Option<&Value>) -> String {
    match v.map(scalar) {
        Some(s) if !s.is_empty() => s,
        _ => "0".into(),
    }
}

/// A label map as `k=v,k2=v2` in key order, `<none>` when empty or missing.
pub(super) fn labels(m: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, String)> = m
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), scalar(v))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `LabelSelector` (`matchLabels` + `matchExpressions`) as selector text, requirements in key
/// order: `app=web,tier in (a,b),!legacy`. A missing or empty selector is `""`; one that cannot
/// be a selector (bad operator, missing values, wrong shape) is an error.
pub(super) fn selector(sel: Option<&Value>) -> Result<String, ()> {
    let sel = match sel {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(()),
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    match sel.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = v.as_str().ok_or(())?;
                reqs.push((k.clone(), format!("{k}={v}")));
            }
        }
        Some(_) => return Err(()),
    }
    let exprs = match sel.get("matchExpressions") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(()),
    };
    for e in exprs {
        let key = e.get("key").and_then(Value::as_str).ok_or(())?;
        if key.is_empty() {
            return Err(());
        }
        let mut values: Vec<&str> = match e.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().ok_or(()))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(()),
        };
        values.sort_unstable();
        values.dedup();
        let text = match e.get("operator").and_then(Value::as_str) {
            Some(op @ ("In" | "NotIn")) if !values.is_empty() => {
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", values.join(","))
            }
            Some("Exists") if values.is_empty() => key.to_string(),
            Some("DoesNotExist") if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(","))
}

/// A selector as the workload printers show it: `<none>` when it selects nothing or
/// everything, `<error>` when invalid.
pub(super) fn selector_or_none(sel: Option<&Value>) -> String {
    match selector(sel) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

/// Access modes abbreviated in upstream's fixed order (`RWO,ROX,RWX,RWOP`), duplicates once.
pub(super) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(full, _)| has(full))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The names and the images of a pod template's containers, each comma-joined.
pub(super) fn containers(list: &[Value]) -> (String, String) {
    let names: Vec<&str> = list.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `host:port`, with IPv6 hosts in brackets.
pub(super) fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The first `max` items comma-joined, then ` + N more...` for the `count - max` left out.
pub(super) fn with_more(list: &[String], count: usize, max: usize) -> String {
    let shown = list.iter().take(max).cloned().collect::<Vec<_>>().join(",");
    if count > max {
        format!("{shown} + {} more...", count - max)
    } else {
        shown
    }
}
