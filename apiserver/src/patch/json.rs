//! JSON patch (RFC 6902): a list of `add`, `remove`, `replace`, `move`, `copy` and `test`
//! operations addressed by JSON pointers (RFC 6901, with `~0`/`~1` escapes and `-` for the
//! end of an array). The operations apply to a copy of the document, so a failing one
//! leaves nothing half-done.
//!
//! Three limits keep a small request from building a huge or unreadable object: at most
//! [`MAX_JSON_PATCH_OPERATIONS`] operations (as upstream), at most [`MAX_COPIED_BYTES`]
//! duplicated by `copy`, and no value nested deeper than [`MAX_DEPTH`].

use serde_json::Value;

use super::{PatchError, json_eq};

/// The most operations one JSON patch may hold.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most (approximate, serialized) bytes the `copy` operations of one patch may duplicate.
pub const MAX_COPIED_BYTES: usize = 8 << 20;

/// The deepest nesting of objects and lists a patched document may reach; kept well under
/// the JSON decoder's own limit so the stored object, and lists and watch events that wrap
/// it, still decode.
pub const MAX_DEPTH: usize = 100;

/// Applies an RFC 6902 JSON patch (`ops` must be a list of operation objects) to a copy of
/// `target` and returns the result. On error nothing is applied and the error names the
/// failing operation's index.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = ops else {
        return Err(PatchError::JsonPatch(format!(
            "expected a list of operations, got {}",
            kind_of(ops)
        )));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::JsonPatch(format!(
            "the allowed count of operations is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = target.clone();
    let mut copied = 0usize;
    for (index, op) in ops.iter().enumerate() {
        apply(&mut doc, op, &mut copied).map_err(|(op, reason)| PatchError::Operation {
            index,
            op,
            reason,
        })?;
    }
    Ok(doc)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Applies one operation; on error, the operation's name and the reason.
fn apply(doc: &mut Value, op: &Value, copied: &mut usize) -> Result<(), (String, String)> {
    let Value::Object(op) = op else {
        return Err((
            "?".to_string(),
            format!("an operation must be an object, got {}", kind_of(op)),
        ));
    };
    let name = match op.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(("?".to_string(), "missing string member \"op\"".to_string())),
    };
    let fail = |reason: String| (name.to_string(), reason);
    let pointer = |member: &str| -> Result<(&str, Vec<String>), (String, String)> {
        match op.get(member) {
            Some(Value::String(s)) => Ok((s.as_str(), parse_pointer(s).map_err(fail)?)),
            _ => Err(fail(format!("missing string member {member:?}"))),
        }
    };
    let value = || {
        op.get("value")
            .ok_or_else(|| fail("missing member \"value\"".to_string()))
    };
    let (ptr, path) = pointer("path")?;
    match name {
        "add" => {
            let v = value()?;
            check_depth(ptr, &path, v).map_err(fail)?;
            add(doc, ptr, &path, v.clone()).map_err(fail)
        }
        "remove" => remove(doc, ptr, &path).map(drop).map_err(fail),
        "replace" => {
            let v = value()?;
            check_depth(ptr, &path, v).map_err(fail)?;
            let slot = get_mut(doc, &path).ok_or_else(|| fail(missing(ptr)))?;
            *slot = v.clone();
            Ok(())
        }
        "move" => {
            let (from_ptr, from) = pointer("from")?;
            let v = get(doc, &from).ok_or_else(|| fail(missing(from_ptr)))?;
            if from == path {
                return Ok(());
            }
            if path.len() > from.len() && path.starts_with(&from) {
                return Err(fail(format!(
                    "cannot move {from_ptr:?} into its own child {ptr:?}"
                )));
            }
            check_depth(ptr, &path, v).map_err(fail)?;
            let v = remove(doc, from_ptr, &from).map_err(fail)?;
            add(doc, ptr, &path, v).map_err(fail)
        }
        "copy" => {
            let (from_ptr, from) = pointer("from")?;
            let v = get(doc, &from).ok_or_else(|| fail(missing(from_ptr)))?;
            check_depth(ptr, &path, v).map_err(fail)?;
            *copied = copied.saturating_add(approx_size(v));
            if *copied > MAX_COPIED_BYTES {
                return Err(fail(format!(
                    "copies exceed the limit of {MAX_COPIED_BYTES} bytes"
                )));
            }
            let v = v.clone();
            add(doc, ptr, &path, v).map_err(fail)
        }
        "test" => {
            let want = value()?;
            let got = get(doc, &path).ok_or_else(|| fail(missing(ptr)))?;
            if json_eq(got, want) {
                Ok(())
            } else {
                Err(fail(format!(
                    "the value at {ptr:?} is not the expected value"
                )))
            }
        }
        other => Err(fail(format!("unknown operation {other:?}"))),
    }
}

fn missing(ptr: &str) -> String {
    format!("path {ptr:?} does not exist")
}

/// Splits a JSON pointer into unescaped reference tokens; `""` is the whole document.
fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!(
            "invalid JSON pointer {p:?}: it must be empty or start with '/'"
        ));
    };
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(format!(
                                "invalid JSON pointer {p:?}: '~' must be followed by '0' or '1'"
                            ));
                        }
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Reads an array index token: decimal without leading zeros, or `-` (one past the end)
/// when inserting. Inserting allows `len`; otherwise the index must be below `len`.
fn array_index(tok: &str, len: usize, inserting: bool) -> Result<usize, String> {
    if tok == "-" {
        return if inserting {
            Ok(len)
        } else {
            Err("index \"-\" refers past the end of the array".to_string())
        };
    }
    let digits = !tok.is_empty() && tok.bytes().all(|b| b.is_ascii_digit());
    if !digits || (tok.len() > 1 && tok.starts_with('0')) {
        return Err(format!("{tok:?} is not a valid array index"));
    }
    let i: usize = tok
        .parse()
        .map_err(|_| format!("array index {tok} is out of bounds"))?;
    if i > len || (i == len && !inserting) {
        return Err(format!("array index {i} is out of bounds (length {len})"));
    }
    Ok(i)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for tok in path {
        cur = match cur {
            Value::Object(m) => m.get(tok)?,
            Value::Array(a) => a.get(array_index(tok, a.len(), false).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for tok in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(tok)?,
            Value::Array(a) => {
                let i = array_index(tok, a.len(), false).ok()?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn add(doc: &mut Value, ptr: &str, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(m)) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = array_index(last, a.len(), true).map_err(|e| format!("path {ptr:?}: {e}"))?;
            a.insert(i, value);
            Ok(())
        }
        Some(_) => Err(format!(
            "path {ptr:?}: the parent is neither an object nor a list"
        )),
        None => Err(format!("path {ptr:?}: the parent does not exist")),
    }
}

fn remove(doc: &mut Value, ptr: &str, path: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the whole document".to_string());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(m)) => m.remove(last).ok_or_else(|| missing(ptr)),
        Some(Value::Array(a)) => {
            let i = array_index(last, a.len(), false).map_err(|e| format!("path {ptr:?}: {e}"))?;
            Ok(a.remove(i))
        }
        _ => Err(missing(ptr)),
    }
}

/// Refuses to place `v` so deep that the document would exceed [`MAX_DEPTH`].
fn check_depth(ptr: &str, path: &[String], v: &Value) -> Result<(), String> {
    if path.len().saturating_add(depth(v)) > MAX_DEPTH {
        return Err(format!(
            "the value at {ptr:?} would nest deeper than {MAX_DEPTH} levels"
        ));
    }
    Ok(())
}

/// How many objects and lists are nested in `v` (a scalar is 0, `[]` is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Roughly the serialized size of `v`.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len().saturating_add(2),
        Value::Array(a) => a
            .iter()
            .fold(2, |n, v| n.saturating_add(approx_size(v)).saturating_add(1)),
        Value::Object(m) => m.iter().fold(2, |n, (k, v)| {
            n.saturating_add(k.len())
                .saturating_add(4)
                .saturating_add(approx_size(v))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(doc: Value, ops: Value) -> Value {
        json_patch(&doc, &ops).unwrap()
    }

    fn err(doc: Value, ops: Value) -> PatchError {
        json_patch(&doc, &ops).unwrap_err()
    }

    #[test]
    fn adds() {
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "add", "path": "/b", "value": 2}])
            ),
            json!({"a": 1, "b": 2})
        );
        assert_eq!(
            ok(
                json!({"a": [1, 3]}),
                json!([{"op": "add", "path": "/a/1", "value": 2}])
            ),
            json!({"a": [1, 2, 3]})
        );
        assert_eq!(
            ok(
                json!({"a": [1]}),
                json!([{"op": "add", "path": "/a/-", "value": 2}])
            ),
            json!({"a": [1, 2]})
        );
        assert_eq!(
            ok(
                json!({"a": [1]}),
                json!([{"op": "add", "path": "/a/1", "value": 2}])
            ),
            json!({"a": [1, 2]})
        );
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "add", "path": "/a", "value": null}])
            ),
            json!({"a": null})
        );
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "add", "path": "", "value": [1]}])
            ),
            json!([1])
        );
        assert_eq!(
            ok(json!({}), json!([{"op": "add", "path": "/", "value": 1}])),
            json!({"": 1})
        );
        assert_eq!(
            ok(
                json!({}),
                json!([{"op": "add", "path": "/a~1b~0c", "value": 1}])
            ),
            json!({"a/b~c": 1})
        );
        assert!(matches!(
            err(
                json!({"a": [1]}),
                json!([{"op": "add", "path": "/a/3", "value": 2}])
            ),
            PatchError::Operation { index: 0, .. }
        ));
        err(
            json!({"a": [1]}),
            json!([{"op": "add", "path": "/a/01", "value": 2}]),
        );
        err(
            json!({}),
            json!([{"op": "add", "path": "/x/y", "value": 2}]),
        );
        err(json!({}), json!([{"op": "add", "path": "/x"}]));
        err(
            json!({"a": 1}),
            json!([{"op": "add", "path": "/a/b", "value": 2}]),
        );
    }

    #[test]
    fn removes_and_replaces() {
        assert_eq!(
            ok(
                json!({"a": 1, "b": 2}),
                json!([{"op": "remove", "path": "/a"}])
            ),
            json!({"b": 2})
        );
        assert_eq!(
            ok(json!([1, 2, 3]), json!([{"op": "remove", "path": "/1"}])),
            json!([1, 3])
        );
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "/a", "value": 5}])
            ),
            json!({"a": 5})
        );
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "", "value": 5}])
            ),
            json!(5)
        );
        err(json!({"a": 1}), json!([{"op": "remove", "path": "/b"}]));
        err(json!([1]), json!([{"op": "remove", "path": "/1"}]));
        err(json!([1]), json!([{"op": "remove", "path": "/-"}]));
        err(
            json!({"a": 1}),
            json!([{"op": "replace", "path": "/b", "value": 1}]),
        );
        err(json!({"a": 1}), json!([{"op": "remove", "path": ""}]));
    }

    #[test]
    fn moves_and_copies() {
        assert_eq!(
            ok(
                json!({"a": {"b": 1}, "c": {}}),
                json!([{"op": "move", "from": "/a/b", "path": "/c/d"}])
            ),
            json!({"a": {}, "c": {"d": 1}})
        );
        assert_eq!(
            ok(
                json!([1, 2, 3, 4]),
                json!([{"op": "move", "from": "/1", "path": "/3"}])
            ),
            json!([1, 3, 4, 2])
        );
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "copy", "from": "/a", "path": "/b"}])
            ),
            json!({"a": 1, "b": 1})
        );
        assert_eq!(
            ok(
                json!({"a": 1}),
                json!([{"op": "move", "from": "/a", "path": "/a"}])
            ),
            json!({"a": 1})
        );
        err(
            json!({"a": {"b": 1}}),
            json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
        );
        err(
            json!({"a": 1}),
            json!([{"op": "copy", "from": "/x", "path": "/b"}]),
        );
    }

    #[test]
    fn tests_values() {
        let doc = json!({"a": {"b": [1, "x", {"c": 2.0}]}});
        ok(
            doc.clone(),
            json!([{"op": "test", "path": "/a/b", "value": [1.0, "x", {"c": 2}]}]),
        );
        ok(
            doc.clone(),
            json!([{"op": "test", "path": "", "value": {"a": {"b": [1, "x", {"c": 2}]}}}]),
        );
        err(
            doc.clone(),
            json!([{"op": "test", "path": "/a/b/0", "value": "1"}]),
        );
        err(doc, json!([{"op": "test", "path": "/a/z", "value": null}]));
    }

    #[test]
    fn atomic() {
        let doc = json!({"a": 1});
        let e = err(
            doc.clone(),
            json!([{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 3}]),
        );
        assert_eq!(
            e,
            PatchError::Operation {
                index: 1,
                op: "test".into(),
                reason: "the value at \"/a\" is not the expected value".into()
            }
        );
    }

    #[test]
    fn malformed() {
        for ops in [
            json!({}),
            json!([1]),
            json!([{"path": "/a"}]),
            json!([{"op": "nope", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/~2", "value": 1}]),
            json!([{"op": "add", "path": 3, "value": 1}]),
            json!([{"op": "move", "path": "/b"}]),
        ] {
            assert!(json_patch(&json!({"a": 1}), &ops).is_err(), "{ops}");
        }
    }

    #[test]
    fn limits() {
        let mut ops = Vec::new();
        for i in 0..40 {
            ops.push(json!({"op": "copy", "from": "", "path": format!("/x{i}")}));
        }
        let e = err(json!({"a": "0123456789"}), Value::Array(ops));
        assert!(e.to_string().contains("copies exceed"), "{e}");
        let mut ops = Vec::new();
        for _ in 0..MAX_DEPTH + 1 {
            ops.push(json!({"op": "add", "path": "/t", "value": {}}));
            ops.push(json!({"op": "move", "from": "/x", "path": "/t/x"}));
            ops.push(json!({"op": "move", "from": "/t", "path": "/x"}));
        }
        assert!(json_patch(&json!({"x": 1}), &Value::Array(ops)).is_err());
        let many = Value::Array(vec![
            json!({"op": "test", "path": "", "value": 1});
            MAX_JSON_PATCH_OPERATIONS + 1
        ]);
        assert!(matches!(err(json!(1), many), PatchError::JsonPatch(_)));
    }
}
