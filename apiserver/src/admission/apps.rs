//! apps/v1 workloads (Deployment, ReplicaSet, DaemonSet): upstream's defaults (replicas,
//! update strategies, history limits, the pod template's spec), validation of selector,
//! template and strategy, and the immutable selector.

use serde_json::{Value, json};

use super::meta::{
    go_map, selector_is_empty, selector_matches, validate_annotations, validate_label_selector,
    validate_labels,
};
use super::names::{PERCENT_MSG, percent};
use super::pod::{Owner, default_pod_spec, validate_pod_spec};
use super::util::{Ctx, IntOrStr, Obj, child, ensure_obj, get_str, set_default, set_default_str};
use crate::status::FieldError;

/// Defaults a Deployment, ReplicaSet or DaemonSet.
pub(crate) fn default_workload(obj: &mut Value, owner: Owner) {
    let Some(spec) = obj
        .as_object_mut()
        .and_then(|root| ensure_obj(root, "spec"))
    else {
        return;
    };
    match owner {
        Owner::Deployment => {
            set_default(spec, "replicas", json!(1));
            if let Some(strategy) = ensure_obj(spec, "strategy") {
                set_default_str(strategy, "type", "RollingUpdate");
                if get_str(strategy, "type") == Some("RollingUpdate")
                    && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
                {
                    set_default(ru, "maxUnavailable", json!("25%"));
                    set_default(ru, "maxSurge", json!("25%"));
                }
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
        }
        Owner::ReplicaSet => set_default(spec, "replicas", json!(1)),
        Owner::DaemonSet => {
            if let Some(strategy) = ensure_obj(spec, "updateStrategy") {
                set_default_str(strategy, "type", "RollingUpdate");
                if get_str(strategy, "type") == Some("RollingUpdate")
                    && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
                {
                    set_default(ru, "maxUnavailable", json!(1));
                    set_default(ru, "maxSurge", json!(0));
                }
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
        }
        Owner::Pod => {}
    }
    if let Some(template) = ensure_obj(spec, "template")
        && let Some(pod_spec) = ensure_obj(template, "spec")
    {
        default_pod_spec(pod_spec);
    }
}

fn kind_word(owner: Owner) -> &'static str {
    match owner {
        Owner::DaemonSet => "daemonset",
        _ => "deployment",
    }
}

/// Validates a workload's spec.
pub(crate) fn validate_workload(c: &mut Ctx, obj: &Value, owner: Owner, create: bool) {
    let Some(spec) = c.obj_or_empty(obj.get("spec"), "spec") else {
        return;
    };
    if owner != Owner::DaemonSet {
        c.int_at_least(spec.get("replicas"), "spec.replicas", 0);
    }
    let min_ready = c.int_at_least(spec.get("minReadySeconds"), "spec.minReadySeconds", 0);
    if owner != Owner::ReplicaSet {
        c.int_at_least(
            spec.get("revisionHistoryLimit"),
            "spec.revisionHistoryLimit",
            0,
        );
    }

    // Selector, and the template's labels it must select.
    let selector = match spec.get("selector") {
        None | Some(Value::Null) => {
            c.required("spec.selector", "");
            None
        }
        v => c.obj(v, "spec.selector"),
    };
    let selector_ok = selector.is_some_and(|sel| {
        let ok = validate_label_selector(c, sel, "spec.selector");
        if ok && selector_is_empty(sel) {
            c.invalid(
                "spec.selector",
                spec.get("selector").unwrap_or(&Value::Null),
                &format!("empty selector is invalid for {}", kind_word(owner)),
            );
            return false;
        }
        ok
    });
    let Some(template) = c.obj_or_empty(spec.get("template"), "spec.template") else {
        return;
    };
    let meta = c.obj_or_empty(template.get("metadata"), "spec.template.metadata");
    if let Some(meta) = meta {
        validate_labels(c, meta.get("labels"), "spec.template.metadata.labels");
        validate_annotations(
            c,
            meta.get("annotations"),
            "spec.template.metadata.annotations",
        );
        let labels = template_labels(meta);
        if selector_ok
            && let Some(sel) = spec.get("selector")
            && !selector_matches(sel, &labels)
        {
            c.push(FieldError {
                kind: "FieldValueInvalid",
                field: "spec.template.metadata.labels".into(),
                message: format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_map(&labels)
                ),
            });
        }
    }
    validate_pod_spec(c, template.get("spec"), "spec.template.spec", owner, create);

    match owner {
        Owner::Deployment => {
            validate_strategy(
                c,
                spec.get("strategy"),
                "spec.strategy",
                &["Recreate", "RollingUpdate"],
            );
            c.bool(spec.get("paused"), "spec.paused");
            if let Some(d) = c.int_at_least(
                spec.get("progressDeadlineSeconds"),
                "spec.progressDeadlineSeconds",
                0,
            ) && min_ready.is_some_and(|m| d <= m)
            {
                c.invalid_int(
                    "spec.progressDeadlineSeconds",
                    d,
                    "must be greater than minReadySeconds",
                );
            }
        }
        Owner::DaemonSet => {
            validate_strategy(
                c,
                spec.get("updateStrategy"),
                "spec.updateStrategy",
                &["OnDelete", "RollingUpdate"],
            );
        }
        Owner::ReplicaSet | Owner::Pod => {}
    }
}

fn template_labels(meta: &Obj) -> std::collections::BTreeMap<String, String> {
    meta.get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A Deployment's `strategy` or a DaemonSet's `updateStrategy`.
fn validate_strategy(c: &mut Ctx, v: Option<&Value>, path: &str, types: &[&str]) {
    let Some(s) = c.obj(v, path) else { return };
    let ty = c.one_of(s.get("type"), &child(path, "type"), types);
    let ru_path = child(path, "rollingUpdate");
    let ru = c.obj(s.get("rollingUpdate"), &ru_path);
    match ty.as_deref() {
        Some("Recreate") if ru.is_some() => c.forbidden(
            &ru_path,
            "may not be specified when strategy `type` is 'Recreate'",
        ),
        Some("RollingUpdate") => {
            let Some(ru) = ru else { return };
            let unavailable = int_or_percent(
                c,
                ru.get("maxUnavailable"),
                &child(&ru_path, "maxUnavailable"),
                true,
            );
            let surge = int_or_percent(c, ru.get("maxSurge"), &child(&ru_path, "maxSurge"), false);
            if unavailable == Some(0) && surge == Some(0) {
                c.invalid(
                    &child(&ru_path, "maxUnavailable"),
                    ru.get("maxUnavailable").unwrap_or(&Value::Null),
                    "may not be 0 when `maxSurge` is 0",
                );
            }
        }
        _ => {}
    }
}

/// A non-negative int or `N%`; returns the number (percent or count) when valid.
fn int_or_percent(c: &mut Ctx, v: Option<&Value>, path: &str, at_most_100: bool) -> Option<i64> {
    match c.int_or_str(v, path)? {
        IntOrStr::Int(n) if n < 0 => {
            c.invalid_int(path, n, "must be greater than or equal to 0");
            None
        }
        IntOrStr::Int(n) => Some(n),
        IntOrStr::Str(s) => match percent(s) {
            None => {
                c.invalid_str(path, s, PERCENT_MSG);
                None
            }
            Some(p) if at_most_100 && p > 100 => {
                c.invalid_str(path, s, "must not be greater than 100%");
                None
            }
            Some(p) => Some(p),
        },
    }
}

/// The update rules of a workload: the selector is immutable in apps/v1.
pub(crate) fn validate_workload_update(c: &mut Ctx, old: &Value, new: &Value) {
    let old_sel = old.pointer("/spec/selector");
    let new_sel = new.pointer("/spec/selector");
    if old_sel != new_sel {
        c.invalid(
            "spec.selector",
            new_sel.unwrap_or(&Value::Null),
            "field is immutable",
        );
    }
}
