//! The storage encoding of objects and the cheap path back to the wire.
//!
//! Objects are stored as compact JSON with `metadata` as the first key and without
//! `metadata.resourceVersion` (the store's mod revision is the resourceVersion, as in
//! upstream's etcd3 storage). Because the stored bytes always start with `{"metadata":{`,
//! a read inserts `"resourceVersion":"N"` by splicing bytes, without parsing the object:
//! lists and watches of many objects never re-encode them.

use bytes::Bytes;
use serde_json::Value;

use crate::store::Revision;

const HEAD: &[u8] = b"{\"metadata\":{";

/// Encodes an object for storage (drops `metadata.resourceVersion`, puts metadata first).
pub fn encode(obj: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let empty = serde_json::Map::new();
    let map = obj.as_object().unwrap_or(&empty);
    let mut meta = map
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.remove("resourceVersion");
    out.extend_from_slice(b"\"metadata\":");
    // Serializing a Map of Values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &meta);
    for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "metadata") {
        out.push(b',');
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, v);
    }
    out.push(b'}');
    out
}

/// The wire form of stored bytes at revision `rv` (resourceVersion spliced in).
pub fn with_rv(stored: &[u8], rv: Revision) -> Bytes {
    if let Some(rest) = stored.strip_prefix(HEAD) {
        let field = format!("\"resourceVersion\":\"{rv}\"");
        let mut out = Vec::with_capacity(stored.len() + field.len() + 1);
        out.extend_from_slice(HEAD);
        out.extend_from_slice(field.as_bytes());
        if rest.first() != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return Bytes::from(out);
    }
    // Not written by `encode` (never expected): take the slow, always-correct path.
    match serde_json::from_slice::<Value>(stored) {
        Ok(mut v) => {
            set_rv(&mut v, rv);
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Err(_) => Bytes::copy_from_slice(stored),
    }
}

/// Decodes stored bytes into an object with its resourceVersion set.
pub fn decode(stored: &[u8], rv: Revision) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(stored).ok()?;
    set_rv(&mut v, rv);
    Some(v)
}

/// Sets `metadata.resourceVersion`.
pub fn set_rv(obj: &mut Value, rv: Revision) {
    crate::object::meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splicing_equals_decoding() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "resourceVersion": "9"}, "spec": {}}),
            json!({"kind": "X", "metadata": {}}),
            json!({"kind": "X"}),
        ] {
            let stored = encode(&obj);
            assert!(stored.starts_with(HEAD));
            let wire: Value = serde_json::from_slice(&with_rv(&stored, 42)).unwrap();
            assert_eq!(wire, decode(&stored, 42).unwrap());
            assert_eq!(wire["metadata"]["resourceVersion"], "42");
            assert_eq!(wire["kind"], obj["kind"]);
        }
    }
}
