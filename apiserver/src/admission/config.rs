//! ConfigMaps and Secrets: keys, value encodings and size, the Secret type (defaulted to
//! `Opaque`, with the keys each well-known type needs), `stringData` folded into `data`,
//! and the `immutable` flag.

use base64::Engine;
use serde_json::{Map, Value};

use super::names::config_key_errors;
use super::util::{Ctx, child, ensure_obj, key, set_default_str};
use crate::status::FieldError;

/// Upstream's cap on the data of one ConfigMap or Secret.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Defaults a Secret: type `Opaque`; `stringData` entries are encoded into `data` (they
/// win over `data`) and `stringData` is dropped, as upstream stores Secrets.
pub(crate) fn default_secret(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    set_default_str(root, "type", "Opaque");
    let strings: Option<Map<String, Value>> = match root.get("stringData") {
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Some(m.clone()),
        Some(Value::Null) => {
            root.remove("stringData");
            None
        }
        _ => None,
    };
    let Some(strings) = strings else { return };
    let Some(data) = ensure_obj(root, "data") else {
        return;
    };
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        data.insert(k, Value::String(B64.encode(text)));
    }
    root.remove("stringData");
}

/// Validates a ConfigMap (`secret` false) or Secret.
pub(crate) fn validate_data(c: &mut Ctx, obj: &Value, secret: bool) {
    let Some(root) = c.obj_or_empty(Some(obj), "") else {
        return;
    };
    let mut total = 0usize;
    let data = c.obj(root.get("data"), "data");
    for (k, v) in data.into_iter().flatten() {
        let kp = key("data", k);
        for e in config_key_errors(k) {
            c.invalid_str(&kp, k, &e);
        }
        match (v, secret) {
            (Value::String(s), false) => total += s.len(),
            (Value::String(s), true) => match B64.decode(s) {
                Ok(bytes) => total += bytes.len(),
                Err(_) => c.push(FieldError {
                    kind: "FieldValueInvalid",
                    field: kp,
                    message: "Invalid value: \"<secret contents redacted>\": must be a base64-encoded string".into(),
                }),
            },
            (Value::Null, _) => {}
            (other, _) => c.wrong_type(&kp, other, "string"),
        }
    }
    let extra = if secret { "stringData" } else { "binaryData" };
    for (k, v) in c.obj(root.get(extra), extra).into_iter().flatten() {
        let kp = key(extra, k);
        for e in config_key_errors(k) {
            c.invalid_str(&kp, k, &e);
        }
        match v {
            Value::String(s) if secret => total += s.len(),
            Value::String(s) => match B64.decode(s) {
                Ok(bytes) => total += bytes.len(),
                Err(_) => c.invalid_str(&kp, "<binary data>", "must be a base64-encoded string"),
            },
            Value::Null => {}
            other => c.wrong_type(&kp, other, "string"),
        }
        if !secret && data.is_some_and(|d| d.contains_key(k)) {
            c.invalid_str(&key("data", k), k, "duplicate of key present in binaryData");
        }
    }
    if total > MAX_DATA_BYTES {
        c.too_long("data", MAX_DATA_BYTES);
    }
    c.bool(root.get("immutable"), "immutable");
    if secret {
        let ty = c.string(root.get("type"), "type");
        validate_secret_type(c, root, ty);
    }
}

/// The keys the well-known Secret types require.
fn validate_secret_type(c: &mut Ctx, root: &Map<String, Value>, ty: &str) {
    let has = |k: &str| {
        root.get("data")
            .and_then(|d| d.get(k))
            .is_some_and(|v| !v.is_null())
            || root
                .get("stringData")
                .and_then(|d| d.get(k))
                .is_some_and(|v| !v.is_null())
    };
    let required: &[&str] = match ty {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => &["username"],
        "kubernetes.io/service-account-token" => {
            let annotation = "kubernetes.io/service-account.name";
            let named = root
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(annotation))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                c.required(&key("metadata.annotations", annotation), "");
            }
            &[]
        }
        _ => &[],
    };
    for k in required {
        if !has(k) {
            c.required(&key("data", k), "");
        }
    }
}

/// The update rules of a ConfigMap or Secret: `immutable` objects keep their data and the
/// flag; a Secret keeps its type.
pub(crate) fn validate_data_update(c: &mut Ctx, old: &Value, new: &Value, secret: bool) {
    if secret {
        let ty = |v: &Value| {
            v.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        if ty(old) != ty(new) {
            c.invalid_str("type", &ty(new), "field is immutable");
        }
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        let msg = "field is immutable when `immutable` is set";
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            c.forbidden("immutable", msg);
        }
        let fields: &[&str] = if secret {
            &["data"]
        } else {
            &["data", "binaryData"]
        };
        for f in fields {
            let norm = |v: Option<&Value>| {
                v.filter(|x| !x.is_null())
                    .cloned()
                    .unwrap_or(Value::Object(Map::new()))
            };
            if norm(old.get(*f)) != norm(new.get(*f)) {
                c.forbidden(&child("", f), msg);
            }
        }
    }
}
