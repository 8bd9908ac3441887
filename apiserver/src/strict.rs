//! Field validation against the typed Kubernetes API (k8s-openapi): every written object is
//! decoded into its Rust type, so malformed values are refused with the decoder's message,
//! and fields the type does not know are reported, as upstream's `fieldValidation`
//! (`Strict`: refuse, `Warn`: answer with a `Warning` header, `Ignore`: nothing).
//!
//! Unknown fields are found by a round trip: decode, encode, and list the keys of the input
//! that did not survive (null values aside, which mean "absent" on the wire).

use k8s_openapi::api::{apps, coordination, core, discovery};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How unknown fields are treated (`fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse the request.
    Strict,
    /// Accept, with a warning per field.
    Warn,
    /// Accept silently.
    Ignore,
}

impl Mode {
    /// Parses the query parameter; upstream's default is Warn.
    pub fn from_query(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(Mode::Warn),
            Some("Strict") => Ok(Mode::Strict),
            Some("Ignore") => Ok(Mode::Ignore),
            Some(other) => Err(format!(
                "fieldValidation: invalid value {other:?}: must be one of Ignore, Warn or Strict"
            )),
        }
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The typed round trip of `obj` as `kind`; None for kinds without a typed model.
fn typed(kind: &str, obj: &Value) -> Option<Result<Value, String>> {
    Some(match kind {
        "Namespace" => round_trip::<core::v1::Namespace>(obj),
        "Pod" => round_trip::<core::v1::Pod>(obj),
        "Service" => round_trip::<core::v1::Service>(obj),
        "Endpoints" => round_trip::<core::v1::Endpoints>(obj),
        "Node" => round_trip::<core::v1::Node>(obj),
        "ConfigMap" => round_trip::<core::v1::ConfigMap>(obj),
        "Secret" => round_trip::<core::v1::Secret>(obj),
        "Event" => round_trip::<core::v1::Event>(obj),
        "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(obj),
        "PersistentVolume" => round_trip::<core::v1::PersistentVolume>(obj),
        "PersistentVolumeClaim" => round_trip::<core::v1::PersistentVolumeClaim>(obj),
        "Deployment" => round_trip::<apps::v1::Deployment>(obj),
        "ReplicaSet" => round_trip::<apps::v1::ReplicaSet>(obj),
        "DaemonSet" => round_trip::<apps::v1::DaemonSet>(obj),
        "EndpointSlice" => round_trip::<discovery::v1::EndpointSlice>(obj),
        "Lease" => round_trip::<coordination::v1::Lease>(obj),
        _ => return None,
    })
}

/// Checks `obj` of `kind`: Err(decoder message) when it cannot be decoded, else the unknown
/// field paths (`spec.containers[0].imagee`).
pub fn unknown_fields(kind: &str, obj: &Value) -> Result<Vec<String>, String> {
    let Some(result) = typed(kind, obj) else {
        return Ok(Vec::new());
    };
    let decoded = result?;
    let mut unknown = Vec::new();
    diff(obj, &decoded, String::new(), &mut unknown);
    Ok(unknown)
}

fn diff(input: &Value, kept: &Value, path: String, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(kv) => diff(v, kv, p, out),
                    None if v.is_null() => {}
                    // Empty objects and lists of optional fields may be dropped by the encoder.
                    None if v.as_object().is_some_and(|m| m.is_empty()) => {}
                    None if v.as_array().is_some_and(|l| l.is_empty()) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_with_paths() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "x", "resources": {}}], "bogus": 1},
        });
        assert_eq!(
            unknown_fields("Pod", &pod).unwrap(),
            vec!["spec.bogus", "spec.containers[0].imagee"]
        );
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert!(unknown_fields("ConfigMap", &ok).unwrap().is_empty());
    }

    #[test]
    fn undecodable_values_are_errors() {
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}});
        assert!(unknown_fields("Pod", &bad).is_err());
        assert_eq!(Mode::from_query(None), Ok(Mode::Warn));
        assert!(Mode::from_query(Some("strict")).is_err());
    }
}
