//! `metadata` validation shared by every kind (name format, generateName, labels,
//! annotations, finalizers, ownerReferences), and label selectors: their validation and
//! matching against a label set.

use std::collections::BTreeMap;

use serde_json::Value;

use super::names::{label_value_errors, qualified_name_errors};
use super::util::{Ctx, Obj, child, index};

/// The name rule of a kind.
pub(crate) type NameCheck = fn(&str) -> Option<String>;

/// Upstream's cap on the total size of an object's annotations.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Validates `metadata` with the kind's name rule.
pub(crate) fn validate_object_meta(c: &mut Ctx, obj: &Value, name_check: NameCheck) {
    let Some(m) = c.obj_or_empty(obj.get("metadata"), "metadata") else {
        return;
    };
    if let Some(name) = c
        .str(m.get("name"), "metadata.name")
        .filter(|n| !n.is_empty())
        && let Some(e) = name_check(name)
    {
        c.invalid_str("metadata.name", name, &e);
    }
    if let Some(g) = c
        .str(m.get("generateName"), "metadata.generateName")
        .filter(|g| !g.is_empty())
    {
        // A prefix: checked without the trailing '-' the random suffix follows.
        let prefix = g.strip_suffix('-').unwrap_or(g);
        if let Some(e) = name_check(prefix) {
            c.invalid_str("metadata.generateName", g, &e);
        }
    }
    c.str(m.get("namespace"), "metadata.namespace");
    validate_labels(c, m.get("labels"), "metadata.labels");
    validate_annotations(c, m.get("annotations"), "metadata.annotations");
    for (i, f) in c
        .str_list(m.get("finalizers"), "metadata.finalizers")
        .into_iter()
        .enumerate()
    {
        for e in qualified_name_errors(f) {
            c.invalid_str(&index("metadata.finalizers", i), f, &e);
        }
    }
    validate_owner_references(c, m.get("ownerReferences"));
}

/// Validates a label map (`metadata.labels`, `spec.selector`, `nodeSelector`): keys are
/// qualified names, values label values.
pub(crate) fn validate_labels(c: &mut Ctx, v: Option<&Value>, path: &str) {
    for (k, val) in c.str_map(v, path) {
        for e in qualified_name_errors(k) {
            c.invalid_str(path, k, &e);
        }
        for e in label_value_errors(val) {
            c.invalid_str(path, val, &e);
        }
    }
}

/// Validates annotations: keys are qualified names (case-insensitively), total size capped.
pub(crate) fn validate_annotations(c: &mut Ctx, v: Option<&Value>, path: &str) {
    let mut total = 0usize;
    for (k, val) in c.str_map(v, path) {
        for e in qualified_name_errors(&k.to_ascii_lowercase()) {
            c.invalid_str(path, k, &e);
        }
        total += k.len() + val.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        c.too_long(path, ANNOTATIONS_MAX_BYTES);
    }
}

fn validate_owner_references(c: &mut Ctx, v: Option<&Value>) {
    const P: &str = "metadata.ownerReferences";
    let mut controllers = 0;
    for (i, r) in c.items(v, P).iter().enumerate() {
        let p = index(P, i);
        let Some(r) = c.obj_or_empty(Some(r), &p) else {
            continue;
        };
        let api_version = c.string(r.get("apiVersion"), &child(&p, "apiVersion"));
        if api_version.is_empty() {
            c.invalid_str(
                &child(&p, "apiVersion"),
                api_version,
                "version must not be empty",
            );
        }
        let kind = c.string(r.get("kind"), &child(&p, "kind"));
        if kind.is_empty() {
            c.invalid_str(&child(&p, "kind"), kind, "kind must not be empty");
        }
        let name = c.string(r.get("name"), &child(&p, "name"));
        if name.is_empty() {
            c.invalid_str(&child(&p, "name"), name, "name must not be empty");
        }
        let uid = c.string(r.get("uid"), &child(&p, "uid"));
        if uid.is_empty() {
            c.invalid_str(&child(&p, "uid"), uid, "uid must not be empty");
        }
        if c.bool(r.get("controller"), &child(&p, "controller")) == Some(true) {
            controllers += 1;
        }
        c.bool(
            r.get("blockOwnerDeletion"),
            &child(&p, "blockOwnerDeletion"),
        );
    }
    if controllers > 1 {
        c.invalid(
            P,
            v.unwrap_or(&Value::Null),
            "Only one reference can have Controller set to true",
        );
    }
}

/// Label selector operators.
const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

/// Validates a `LabelSelector` (`matchLabels`, `matchExpressions`); returns whether it is
/// well formed.
pub(crate) fn validate_label_selector(c: &mut Ctx, sel: &Obj, path: &str) -> bool {
    let before = c.len();
    validate_labels(c, sel.get("matchLabels"), &child(path, "matchLabels"));
    let exprs_path = child(path, "matchExpressions");
    for (i, e) in c
        .items(sel.get("matchExpressions"), &exprs_path)
        .iter()
        .enumerate()
    {
        let p = index(&exprs_path, i);
        let Some(e) = c.obj_or_empty(Some(e), &p) else {
            continue;
        };
        let k = c.string(e.get("key"), &child(&p, "key"));
        for msg in qualified_name_errors(k) {
            c.invalid_str(&child(&p, "key"), k, &msg);
        }
        let values = c.str_list(e.get("values"), &child(&p, "values"));
        match c.str(e.get("operator"), &child(&p, "operator")) {
            Some("In" | "NotIn") if values.is_empty() => c.required(
                &child(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Some("Exists" | "DoesNotExist") if !values.is_empty() => c.forbidden(
                &child(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            Some(op) if !OPERATORS.contains(&op) => {
                c.invalid_str(&child(&p, "operator"), op, "not a valid selector operator")
            }
            None => c.required(&child(&p, "operator"), ""),
            _ => {}
        }
        for (j, val) in values.iter().enumerate() {
            for msg in label_value_errors(val) {
                c.invalid_str(&index(&child(&p, "values"), j), val, &msg);
            }
        }
    }
    c.len() == before
}

/// Whether a selector selects nothing-in-particular: no labels and no expressions.
pub(crate) fn selector_is_empty(sel: &Obj) -> bool {
    let no_labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty());
    let no_exprs = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty());
    no_labels && no_exprs
}

/// Whether a `LabelSelector` object matches `labels`. A malformed selector (wrong types,
/// unknown operator) matches nothing; an empty one matches everything.
pub fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector.as_object() else {
        return selector.is_null();
    };
    match sel.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Some(v) = v.as_str() else { return false };
                if labels.get(k).map(String::as_str) != Some(v) {
                    return false;
                }
            }
        }
        Some(_) => return false,
    }
    let exprs = match sel.get("matchExpressions") {
        None | Some(Value::Null) => return true,
        Some(Value::Array(a)) => a,
        Some(_) => return false,
    };
    exprs.iter().all(|e| {
        let Some(k) = e.get("key").and_then(Value::as_str) else {
            return false;
        };
        let values: Option<Vec<&str>> = match e.get("values") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Array(a)) => a.iter().map(Value::as_str).collect(),
            Some(_) => None,
        };
        let Some(values) = values else { return false };
        let have = labels.get(k).map(String::as_str);
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => have.is_some_and(|h| values.contains(&h)),
            Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            _ => false,
        }
    })
}

/// A label map as Go prints a `map[string]string` with `%#v` (keys sorted).
pub(crate) fn go_map(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}
