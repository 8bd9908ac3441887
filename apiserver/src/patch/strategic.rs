//! Strategic merge patch, as kubectl `apply`, `edit`, `set image`, `label`, `annotate` and
//! `scale` send it.
//!
//! Semantics, following upstream apimachinery:
//!
//! - objects merge key by key, recursively; a `null` value deletes the key;
//! - a list is replaced by the patch's list unless the kind's table ([`super::schema`])
//!   gives it a merge strategy: then items are merged by their merge key (matching items
//!   merge recursively, new ones are added), or, for scalar lists, unioned;
//! - merged lists keep the object's order for items the patch does not mention, put the
//!   patch's items in the patch's order (or in `$setElementOrder/<field>`'s), and place
//!   new items before the object's items that follow them;
//! - directives: `$patch: replace` (a map or a merged list is replaced by the rest of the
//!   patch), `$patch: delete` (on a list item: delete the item with that merge key; on a
//!   map: delete the map), `$retainKeys` (drop the map's keys not listed),
//!   `$deleteFromPrimitiveList/<field>` (remove these scalars), and
//!   `$setElementOrder/<field>` (order the merged list).
//!
//! No directive key is ever left in the result, even inside values the object did not
//! have before.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{ListStrategy, list_strategy};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch (which must be a JSON object) to an object of `kind`
/// (`Pod`, `Deployment`, ...; unknown kinds get only the metadata rules) and returns the
/// result. `target` is not modified; a non-object target counts as `{}`.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    kind: &str,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject);
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = Merger { kind }.merge_map(original, patch, "")?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER)
        || key.starts_with(DELETE_PRIMITIVE)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn fail(path: &str, reason: impl Into<String>) -> PatchError {
    let path = if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    };
    PatchError::Strategic {
        path,
        reason: reason.into(),
    }
}

/// A short rendering of a value for error messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// A string identifying a value for set membership, with `1` and `1.0` the same.
fn identity(v: &Value) -> String {
    match v {
        Value::String(s) => format!("s{s}"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                format!("n{i}")
            } else if let Some(u) = n.as_u64() {
                format!("n{u}")
            } else {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    format!("n{}", f as i64)
                } else {
                    format!("n{f}")
                }
            }
        }
        other => other.to_string(),
    }
}

/// How items of a merged list are identified.
#[derive(Clone, Copy)]
enum Ident<'k> {
    /// By the value of this key (items that are not objects or lack it have none).
    Key(&'k str),
    /// By their own value.
    Value,
}

impl Ident<'_> {
    fn of(self, item: &Value) -> Option<String> {
        match self {
            Ident::Key(k) => item.as_object()?.get(k).map(identity),
            Ident::Value => Some(identity(item)),
        }
    }

    /// The identities listed in a `$setElementOrder` list (entries it cannot read are
    /// skipped rather than rejected).
    fn of_order(self, order: &[Value]) -> Vec<String> {
        order.iter().filter_map(|o| self.of(o)).collect()
    }
}

/// Orders a merged list: items whose identity is in `wanted` (the patch's items, or the
/// `$setElementOrder` list) in that order; the rest in their current order; the two
/// interleaved so that an item of the rest goes before a wanted item that came after it
/// in the object (`server` maps identities to their index there). Wanted items the object
/// did not have go first, as upstream.
fn arrange(
    items: Vec<Value>,
    ident: Ident<'_>,
    wanted: &[String],
    server: &HashMap<String, usize>,
) -> Vec<Value> {
    if wanted.is_empty() {
        return items;
    }
    let mut rank: HashMap<&str, usize> = HashMap::with_capacity(wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        rank.entry(w.as_str()).or_insert(i);
    }
    let mut listed: Vec<(usize, Option<usize>, Value)> = Vec::new();
    let mut rest: Vec<(Option<usize>, Value)> = Vec::new();
    for item in items {
        let id = ident.of(&item);
        let at = id.as_ref().and_then(|id| server.get(id).copied());
        match id.as_ref().and_then(|id| rank.get(id.as_str())) {
            Some(&r) => listed.push((r, at, item)),
            None => rest.push((at, item)),
        }
    }
    listed.sort_by_key(|(r, _, _)| *r);
    let mut out = Vec::with_capacity(listed.len() + rest.len());
    let mut listed = listed.into_iter().peekable();
    let mut rest = rest.into_iter().peekable();
    loop {
        let take_rest = match (rest.peek(), listed.peek()) {
            (Some((Some(a), _)), Some((_, Some(b), _))) => a < b,
            (Some(_), Some(_)) => false,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_rest {
            rest.next().map(|(_, v)| v)
        } else {
            listed.next().map(|(_, _, v)| v)
        };
        out.extend(next);
    }
    out
}

/// Index of the first item with each identity.
fn positions(items: &[Value], ident: Ident<'_>) -> HashMap<String, usize> {
    let mut at = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(id) = ident.of(item) {
            at.entry(id).or_insert(i);
        }
    }
    at
}

struct Merger<'a> {
    kind: &'a str,
}

impl Merger<'_> {
    /// Merges a patch map into an object map; `None` when the patch deletes the map.
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &str,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match patch.get(PATCH) {
            None => {}
            Some(Value::String(d)) if d == "replace" => {
                let rest: Map<String, Value> = patch
                    .iter()
                    .filter(|(k, _)| k.as_str() != PATCH)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                return self.merge_map(Map::new(), &rest, path);
            }
            Some(Value::String(d)) if d == "delete" => return Ok(None),
            Some(Value::String(d)) if d == "merge" => {}
            Some(other) => {
                return Err(fail(
                    path,
                    format!("unknown patch directive \"$patch\": {}", brief(other)),
                ));
            }
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let Value::Array(list) = retain else {
                return Err(fail(path, "\"$retainKeys\" must be a list of field names"));
            };
            let mut keep: HashSet<&str> = HashSet::with_capacity(list.len());
            for k in list {
                let Some(k) = k.as_str() else {
                    return Err(fail(path, "\"$retainKeys\" must be a list of field names"));
                };
                keep.insert(k);
            }
            for (k, v) in patch {
                if !is_directive(k) && !v.is_null() && !keep.contains(k.as_str()) {
                    return Err(fail(
                        path,
                        format!("field {k:?} is in the patch but not in \"$retainKeys\""),
                    ));
                }
            }
            original.retain(|k, _| keep.contains(k.as_str()));
        }

        let mut orders: HashMap<&str, &[Value]> = HashMap::new();
        for (k, v) in patch {
            if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
                let Value::Array(gone) = v else {
                    return Err(fail(
                        &join(path, field),
                        "\"$deleteFromPrimitiveList\" must be a list",
                    ));
                };
                if let Some(Value::Array(items)) = original.get_mut(field) {
                    let gone: HashSet<String> = gone.iter().map(identity).collect();
                    items.retain(|item| !gone.contains(&identity(item)));
                }
            } else if let Some(field) = k.strip_prefix(SET_ORDER) {
                let Value::Array(order) = v else {
                    return Err(fail(
                        &join(path, field),
                        "\"$setElementOrder\" must be a list",
                    ));
                };
                orders.insert(field, order);
            }
        }

        for (k, pv) in patch {
            if is_directive(k) {
                continue;
            }
            if pv.is_null() {
                original.remove(k);
                continue;
            }
            let child = join(path, k);
            let order = orders.get(k.as_str()).copied();
            let merged = match original.get_mut(k) {
                Some(slot) => self.merge_value(std::mem::take(slot), pv, &child, order)?,
                None => self.fresh(pv, &child, order)?,
            };
            match merged {
                Some(v) => {
                    original.insert(k.clone(), v);
                }
                None => {
                    original.remove(k);
                }
            }
        }

        // An order for a list the patch does not otherwise touch just reorders it.
        for (field, order) in orders {
            if patch.contains_key(field) {
                continue;
            }
            let child = join(path, field);
            let ident = match list_strategy(self.kind, &child) {
                ListStrategy::MergeByKey(key) => Ident::Key(key),
                ListStrategy::MergePrimitives => Ident::Value,
                ListStrategy::Replace => continue,
            };
            if let Some(Value::Array(items)) = original.get_mut(field) {
                let server = positions(items, ident);
                let taken = std::mem::take(items);
                *items = arrange(taken, ident, &ident.of_order(order), &server);
            }
        }
        Ok(Some(original))
    }

    /// Merges a patch value into an existing value; `None` when the result is deleted.
    fn merge_value(
        &self,
        original: Value,
        patch: &Value,
        path: &str,
        order: Option<&[Value]>,
    ) -> Result<Option<Value>, PatchError> {
        match (original, patch) {
            (Value::Object(o), Value::Object(p)) => {
                Ok(self.merge_map(o, p, path)?.map(Value::Object))
            }
            (Value::Array(o), Value::Array(p)) => {
                Ok(Some(Value::Array(self.merge_list(o, p, path, order)?)))
            }
            (_, patch) => self.fresh(patch, path, order),
        }
    }

    /// A patch value where the object had none (or one of another type): the patch
    /// applied to nothing, which drops its nulls and directives.
    fn fresh(
        &self,
        patch: &Value,
        path: &str,
        order: Option<&[Value]>,
    ) -> Result<Option<Value>, PatchError> {
        match patch {
            Value::Object(p) => Ok(self.merge_map(Map::new(), p, path)?.map(Value::Object)),
            Value::Array(p) => Ok(Some(Value::Array(self.merge_list(
                Vec::new(),
                p,
                path,
                order,
            )?))),
            Value::Null => Ok(None),
            other => Ok(Some(other.clone())),
        }
    }

    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        path: &str,
        order: Option<&[Value]>,
    ) -> Result<Vec<Value>, PatchError> {
        let item_path = format!("{path}[]");
        match list_strategy(self.kind, path) {
            ListStrategy::Replace => {
                let mut out = Vec::with_capacity(patch.len());
                for item in patch {
                    match item {
                        Value::Null => out.push(Value::Null),
                        item => out.extend(self.fresh(item, &item_path, None)?),
                    }
                }
                Ok(out)
            }
            ListStrategy::MergePrimitives => {
                if let Some(bad) = patch.iter().find(|v| v.is_object() || v.is_array()) {
                    return Err(fail(
                        path,
                        format!("cannot merge {} into a list of scalars", brief(bad)),
                    ));
                }
                let server = positions(&original, Ident::Value);
                let mut seen = HashSet::with_capacity(original.len() + patch.len());
                let mut merged = Vec::with_capacity(original.len() + patch.len());
                for v in original.into_iter().chain(patch.iter().cloned()) {
                    if seen.insert(identity(&v)) {
                        merged.push(v);
                    }
                }
                let wanted = match order {
                    Some(order) => Ident::Value.of_order(order),
                    None => patch.iter().map(identity).collect(),
                };
                Ok(arrange(merged, Ident::Value, &wanted, &server))
            }
            ListStrategy::MergeByKey(key) => {
                self.merge_keyed(original, patch, key, &item_path, order)
            }
        }
    }

    fn merge_keyed(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        key: &str,
        item_path: &str,
        order: Option<&[Value]>,
    ) -> Result<Vec<Value>, PatchError> {
        let ident = Ident::Key(key);
        let mut replace = false;
        let mut items = Vec::with_capacity(patch.len());
        let mut deleted = HashSet::new();
        for p in patch {
            let Value::Object(m) = p else {
                return Err(fail(
                    item_path,
                    format!(
                        "list items must be objects with the merge key {key:?}, got {}",
                        brief(p)
                    ),
                ));
            };
            match m.get(PATCH) {
                None => {
                    let id = m.get(key).map(identity).ok_or_else(|| {
                        fail(
                            item_path,
                            format!(
                                "list item {} does not contain the merge key {key:?}",
                                brief(p)
                            ),
                        )
                    })?;
                    items.push((id, m));
                }
                Some(Value::String(d)) if d == "delete" => {
                    let id = m.get(key).map(identity).ok_or_else(|| {
                        fail(
                            item_path,
                            format!(
                                "list item {} to delete does not contain the merge key {key:?}",
                                brief(p)
                            ),
                        )
                    })?;
                    deleted.insert(id);
                }
                Some(Value::String(d)) if d == "replace" => replace = true,
                Some(other) => {
                    return Err(fail(
                        item_path,
                        format!("unknown list item directive \"$patch\": {}", brief(other)),
                    ));
                }
            }
        }

        if replace {
            let mut out = Vec::with_capacity(items.len());
            for (_, m) in &items {
                out.extend(self.merge_map(Map::new(), m, item_path)?.map(Value::Object));
            }
            return Ok(match order {
                Some(order) => arrange(out, ident, &ident.of_order(order), &HashMap::new()),
                None => out,
            });
        }

        let mut result = original;
        if !deleted.is_empty() {
            result.retain(|item| !ident.of(item).is_some_and(|id| deleted.contains(&id)));
        }
        let server = positions(&result, ident);
        let mut index = server.clone();
        let mut dropped = Vec::new();
        for (id, m) in &items {
            match index.get(id).copied() {
                Some(i) => {
                    let Some(slot) = result.get_mut(i) else {
                        continue;
                    };
                    let merged = match std::mem::take(slot) {
                        Value::Object(o) => self.merge_map(o, m, item_path)?,
                        _ => self.merge_map(Map::new(), m, item_path)?,
                    };
                    match merged {
                        Some(v) => *slot = Value::Object(v),
                        None => dropped.push(i),
                    }
                }
                None => {
                    if let Some(v) = self.merge_map(Map::new(), m, item_path)? {
                        index.insert(id.clone(), result.len());
                        result.push(Value::Object(v));
                    }
                }
            }
        }
        if !dropped.is_empty() {
            let mut i = 0;
            result.retain(|_| {
                let keep = !dropped.contains(&i);
                i += 1;
                keep
            });
        }
        let wanted = match order {
            Some(order) => ident.of_order(order),
            None => items.into_iter().map(|(id, _)| id).collect(),
        };
        Ok(arrange(result, ident, &wanted, &server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value, kind: &str) -> Value {
        strategic_merge_patch(&target, &patch, kind).unwrap()
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let got = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"y": {"z": null, "w": 1}}}),
            "ConfigMap",
        );
        assert_eq!(
            got,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"x": 1, "y": {"w": 1}}})
        );
    }

    #[test]
    fn unlisted_lists_replace() {
        let got = smp(
            json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
            "Pod",
        );
        assert_eq!(got, json!({"spec": {"tolerations": [{"key": "c"}]}}));
    }

    #[test]
    fn new_items_go_first_without_order() {
        let got = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "x"}]}}),
            "Pod",
        );
        assert_eq!(
            got,
            json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a"}, {"name": "b"}]}})
        );
    }

    #[test]
    fn patch_order_wins_for_mentioned_items() {
        let got = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
            json!({"spec": {"containers": [{"name": "c"}, {"name": "a"}]}}),
            "Pod",
        );
        let names: Vec<_> = got["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("b"), json!("c"), json!("a")]);
    }

    #[test]
    fn primitive_merge_and_delete() {
        let got = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
            "Namespace",
        );
        assert_eq!(got, json!({"metadata": {"finalizers": ["b", "c"]}}));
    }

    #[test]
    fn directive_errors() {
        for patch in [
            json!({"spec": {"$patch": "explode"}}),
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
            json!({"spec": {"containers": ["x"]}}),
            json!({"spec": {"$retainKeys": "x"}}),
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            json!({"spec": {"$setElementOrder/containers": {}}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
        ] {
            assert!(
                strategic_merge_patch(&json!({"spec": {"containers": []}}), &patch, "Pod").is_err(),
                "{patch}"
            );
        }
        assert_eq!(
            strategic_merge_patch(&json!({}), &json!([]), "Pod"),
            Err(PatchError::NotAnObject)
        );
    }
}
