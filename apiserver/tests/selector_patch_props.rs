//! Property tests: selectors and patches never panic on arbitrary input, generated valid
//! selectors round-trip and match as their definition says, and patch results obey the
//! RFCs' and strategic merge patch's invariants.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use apiserver::patch::{json_eq, json_merge_patch, json_patch, strategic_merge_patch};
use apiserver::selector::{
    LabelSelector, escape_field_value, field_value, parse_field_selector, parse_label_selector,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ------------------------------------------------------------------ generators

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "name", "image", "containers", "spec", "env", "value", "ports", "containerPort", "metadata",
            "labels", "finalizers", "template", "a", "b", "$patch", "$retainKeys",
            "$setElementOrder/containers", "$setElementOrder/finalizers", "$deleteFromPrimitiveList/finalizers",
            "$setElementOrder/env", "0", "-", "~", "/",
        ])
        .prop_map(String::from),
        1 => "[a-z~/0-9-]{0,4}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..300).prop_map(Value::from),
        (-10.0f64..10.0).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "delete", "replace", "merge", "x", "", "name", "/a", "/-", "/0"
        ])
        .prop_map(Value::from),
        "[a-z/~0-9-]{0,5}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON pointer made of tokens likely to exist in [`arb_json`] documents.
fn arb_pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            arb_key(),
            (0usize..4).prop_map(|i| i.to_string()),
            Just("-".to_string()),
            Just("~0~1".to_string())
        ],
        0..4,
    )
    .prop_map(|toks| toks.iter().map(|t| format!("/{t}")).collect())
}

fn arb_op() -> impl Strategy<Value = Value> {
    let name = prop::sample::select(vec![
        "add", "remove", "replace", "move", "copy", "test", "bogus",
    ]);
    (name, arb_pointer(), arb_pointer(), arb_json(), 0u8..10).prop_map(
        |(op, path, from, value, shape)| match shape {
            0 => json!({"op": op, "path": path}),
            1 => json!({"path": path, "value": value}),
            2 => value,
            _ => json!({"op": op, "path": path, "from": from, "value": value}),
        },
    )
}

/// Objects and scalars only, with no directive keys.
fn arb_json_without_lists() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..300).prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop::collection::btree_map(
            arb_key().prop_filter("no directives", |k| !is_directive(k)),
            inner,
            0..5,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

fn is_directive(k: &str) -> bool {
    k == "$patch"
        || k == "$retainKeys"
        || k.starts_with("$setElementOrder/")
        || k.starts_with("$deleteFromPrimitiveList/")
}

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| is_directive(k) || has_directive(v)),
        Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

fn has_list_or_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| is_directive(k) || has_list_or_directive(v)),
        Value::Array(_) => true,
        _ => false,
    }
}

/// A container for pod-shaped strategic merge patch tests; `directive` adds `$patch`.
fn arb_container(directives: bool) -> impl Strategy<Value = Value> {
    let directive = if directives {
        prop::option::weighted(
            0.2,
            prop::sample::select(vec!["delete", "replace", "merge", "bogus"]),
        )
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        prop::sample::select(vec!["a", "b", "c", "d"]),
        prop::option::of(prop::sample::select(vec!["img:1", "img:2"])),
        prop::option::of(prop::collection::vec(
            (
                prop::sample::select(vec!["X", "Y", "Z"]),
                prop::option::of("[a-z]{0,3}"),
            ),
            0..4,
        )),
        directive,
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec![80, 443, 8080]),
            0..3,
        )),
    )
        .prop_map(move |(name, image, env, directive, ports)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            if let Some(i) = image {
                c.insert("image".into(), json!(i));
            }
            if let Some(env) = env {
                let env: Vec<Value> = env
                    .into_iter()
                    .map(|(n, v)| match v {
                        Some(v) => json!({"name": n, "value": v}),
                        None if directives => json!({"name": n, "$patch": "delete"}),
                        None => json!({"name": n}),
                    })
                    .collect();
                c.insert("env".into(), Value::Array(env));
            }
            if let Some(ports) = ports {
                c.insert(
                    "ports".into(),
                    Value::Array(
                        ports
                            .into_iter()
                            .map(|p| json!({"containerPort": p}))
                            .collect(),
                    ),
                );
            }
            if let Some(d) = directive {
                c.insert("$patch".into(), json!(d));
            }
            Value::Object(c)
        })
}

fn arb_pod(directives: bool) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(arb_container(directives), 0..5),
        prop::collection::btree_map(
            prop::sample::select(vec!["app", "tier", "x"]),
            prop::option::of("[a-z]{0,3}"),
            0..3,
        ),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c"]),
            0..4,
        )),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "d", "e"]),
            0..5,
        )),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["a", "b", "q"]),
            0..3,
        )),
    )
        .prop_map(move |(containers, labels, finalizers, order, delete)| {
            let labels: Map<String, Value> = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map(Value::from).unwrap_or(Value::Null)))
                .collect();
            let mut spec = Map::new();
            spec.insert("containers".into(), Value::Array(containers));
            let mut meta = Map::new();
            meta.insert("labels".into(), Value::Object(labels));
            if let Some(f) = finalizers {
                meta.insert("finalizers".into(), json!(f));
            }
            if directives {
                if let Some(order) = order {
                    let order: Vec<Value> = order.into_iter().map(|n| json!({"name": n})).collect();
                    spec.insert("$setElementOrder/containers".into(), Value::Array(order));
                }
                if let Some(d) = delete {
                    meta.insert("$deleteFromPrimitiveList/finalizers".into(), json!(d));
                }
            }
            json!({"metadata": meta, "spec": spec})
        })
}

/// Removes nulls and duplicate-named containers so a generated pod is a plausible object.
fn as_object(mut pod: Value) -> Value {
    if let Some(labels) = pod
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.retain(|_, v| !v.is_null());
    }
    if let Some(cs) = pod
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    {
        let mut seen = std::collections::HashSet::new();
        cs.retain(|c| seen.insert(c["name"].clone()));
    }
    pod
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| c["name"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------------ selectors

const KEYS: &[&str] = &["app", "tier", "example.com/x", "a.b_c-d", "k8s.io/Name9"];
const VALUES: &[&str] = &["", "web", "db", "v1.2", "X_y-z"];

#[derive(Debug, Clone)]
enum Op {
    Eq(&'static str),
    NotEq,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone)]
struct Req {
    key: String,
    op: Op,
    values: Vec<String>,
}

fn arb_label_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(String::from),
        1 => "([a-z0-9]{1,4}(\\.[a-z0-9]{1,4})?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?"
            .prop_filter("keywords are not keys", |k| k != "in" && k != "notin"),
    ]
}

fn arb_label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(VALUES).prop_map(String::from),
        1 => "([A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?)?",
    ]
}

fn arb_req() -> impl Strategy<Value = Req> {
    let op = prop_oneof![
        Just(Op::Eq("=")),
        Just(Op::Eq("==")),
        Just(Op::NotEq),
        Just(Op::In),
        Just(Op::NotIn),
        Just(Op::Exists),
        Just(Op::DoesNotExist),
    ];
    (
        arb_label_key(),
        op,
        prop::collection::vec(arb_label_value(), 1..4),
    )
        .prop_map(|(key, op, mut values)| {
            match op {
                Op::Exists | Op::DoesNotExist => values.clear(),
                Op::Eq(_) | Op::NotEq => values.truncate(1),
                Op::In | Op::NotIn => {}
            }
            Req { key, op, values }
        })
}

fn render(r: &Req, ws: &str) -> String {
    let k = &r.key;
    let v = r.values.first().map(String::as_str).unwrap_or("");
    match r.op {
        Op::Eq(op) => format!("{ws}{k}{ws}{op}{ws}{v}{ws}"),
        Op::NotEq => format!("{ws}{k}{ws}!={ws}{v}{ws}"),
        Op::In => format!(
            "{ws}{k} in{ws}({ws}{}{ws}){ws}",
            r.values.join(&format!("{ws},{ws}"))
        ),
        Op::NotIn => format!("{ws}{k} notin{ws}({}){ws}", r.values.join(",")),
        Op::Exists => format!("{ws}{k}{ws}"),
        Op::DoesNotExist => format!("{ws}!{ws}{k}{ws}"),
    }
}

fn expect(r: &Req, labels: &BTreeMap<String, String>) -> bool {
    let got = labels.get(&r.key);
    let listed = got.is_some_and(|g| r.values.contains(g));
    match r.op {
        Op::Eq(_) | Op::In => listed,
        Op::NotEq | Op::NotIn => !listed,
        Op::Exists => got.is_some(),
        Op::DoesNotExist => got.is_none(),
    }
}

fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(arb_label_key(), arb_label_value(), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn label_parser_never_panics(s in any::<String>()) {
        let _ = parse_label_selector(&s);
    }

    #[test]
    fn label_parser_never_panics_on_near_misses(s in "[a-z0-9./_ ,=!()<>-]{0,40}|(in|notin|[a ,()!=])*") {
        if let Ok(sel) = parse_label_selector(&s) {
            // Whatever parses prints back to something that parses to the same selector.
            let again = parse_label_selector(&sel.to_string()).unwrap();
            prop_assert_eq!(again, sel);
        }
    }

    #[test]
    fn generated_label_selectors_round_trip_and_match(
        reqs in prop::collection::vec(arb_req(), 0..5),
        ws in prop::sample::select(vec!["", " ", "  ", "\t"]),
        labels in arb_labels(),
    ) {
        let text: Vec<String> = reqs.iter().map(|r| render(r, ws)).collect();
        let text = text.join(",");
        let sel = parse_label_selector(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(sel.requirements().len(), reqs.len());
        let want = reqs.iter().all(|r| expect(r, &labels));
        prop_assert_eq!(sel.matches(&labels), want, "{:?} on {:?}", text, labels);
        let again = parse_label_selector(&sel.to_string()).unwrap();
        prop_assert_eq!(&again, &sel);
        // The same labels as a JSON map match the same way.
        let json: Map<String, Value> = labels.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        prop_assert_eq!(sel.matches(&json), want);
    }

    #[test]
    fn api_selectors_match_like_their_string_form(
        match_labels in prop::collection::btree_map(arb_label_key(), arb_label_value(), 0..3),
        exprs in prop::collection::vec((arb_label_key(), 0usize..4, prop::collection::vec(arb_label_value(), 1..3)), 0..3),
        labels in arb_labels(),
    ) {
        let ops = ["In", "NotIn", "Exists", "DoesNotExist"];
        let exprs: Vec<Value> = exprs
            .into_iter()
            .map(|(key, op, values)| {
                if op < 2 {
                    json!({"key": key, "operator": ops[op], "values": values})
                } else {
                    json!({"key": key, "operator": ops[op]})
                }
            })
            .collect();
        let api = json!({"matchLabels": match_labels, "matchExpressions": exprs});
        let sel = LabelSelector::from_api(&api).unwrap();
        let reparsed = parse_label_selector(&sel.to_string()).unwrap();
        prop_assert_eq!(sel.matches(&labels), reparsed.matches(&labels));
    }

    #[test]
    fn api_selector_conversion_never_panics(v in arb_json()) {
        let _ = LabelSelector::from_api(&v);
        let _ = LabelSelector::from_api(&json!({"matchExpressions": [v.clone()]}));
        let _ = LabelSelector::from_api(&json!({"matchLabels": v}));
    }

    #[test]
    fn field_parser_never_panics(s in any::<String>(), t in "[a-z.=!,\\\\ ]{0,30}") {
        let _ = parse_field_selector(&s);
        if let Ok(f) = parse_field_selector(&t) {
            prop_assert_eq!(parse_field_selector(&f.to_string()).unwrap(), f);
        }
    }

    #[test]
    fn field_values_round_trip_through_escaping(
        terms in prop::collection::vec(("[a-z]{1,5}(\\.[a-zA-Z]{1,5}){0,2}", any::<bool>(), "[a-z,=\\\\!. ]{0,8}"), 0..4),
        obj in arb_json(),
    ) {
        let text: Vec<String> = terms
            .iter()
            .map(|(f, eq, v)| format!("{f}{}{}", if *eq { "=" } else { "!=" }, escape_field_value(v)))
            .collect();
        let text = text.join(",");
        let sel = parse_field_selector(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let kept: Vec<_> = terms.iter().collect();
        prop_assert_eq!(sel.requirements().len(), kept.len());
        for (r, (f, _, v)) in sel.requirements().iter().zip(&kept) {
            prop_assert_eq!(r.field(), f.as_str());
            prop_assert_eq!(r.value(), v.trim());
        }
        let want = kept.iter().all(|(f, eq, v)| {
            let got = field_value(&obj, f).unwrap_or_default();
            (got == v.trim()) == *eq
        });
        prop_assert_eq!(sel.matches_object(&obj), want);
    }

    #[test]
    fn field_value_never_panics(obj in arb_json(), path in "[a-z.~/0-9-]{0,12}") {
        let _ = field_value(&obj, &path);
    }
}

// ------------------------------------------------------------------ patches

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn merge_patch_never_panics_and_is_idempotent(target in arb_json(), patch in arb_json()) {
        let mut once = target.clone();
        json_merge_patch(&mut once, &patch);
        let mut twice = once.clone();
        json_merge_patch(&mut twice, &patch);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn json_patch_never_panics(doc in arb_json(), ops in prop::collection::vec(arb_op(), 0..6), raw in arb_json()) {
        let _ = json_patch(&doc, &raw);
        if let Ok(out) = json_patch(&doc, &Value::Array(ops.clone())) {
            // A successful patch is reproducible, and its result passes a test of itself.
            prop_assert_eq!(&json_patch(&doc, &Value::Array(ops)).unwrap(), &out);
            let itself = json!([{"op": "test", "path": "", "value": out.clone()}]);
            let passes = json_patch(&out, &itself).is_ok();
            prop_assert!(passes);
        }
    }

    #[test]
    fn json_patch_add_then_remove_restores(doc in prop::collection::btree_map("[a-z]{1,3}", arb_json(), 0..4), key in "[a-z~/]{1,4}", value in arb_json()) {
        let doc = Value::Object(doc.into_iter().collect());
        prop_assume!(doc.get(&key).is_none());
        let ptr = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
        let ops = json!([{"op": "add", "path": ptr, "value": value}, {"op": "test", "path": ptr, "value": value}, {"op": "remove", "path": ptr}]);
        let out = json_patch(&doc, &ops).unwrap();
        prop_assert!(json_eq(&out, &doc));
    }

    #[test]
    fn strategic_merge_patch_never_panics(target in arb_json(), patch in arb_json(), kind in prop::sample::select(vec!["Pod", "Deployment", "Service", "Node", "ConfigMap"])) {
        if let Ok(out) = strategic_merge_patch(&target, &patch, kind) {
            prop_assert!(!has_directive(&out) || has_directive(&target), "directive leaked: {}", out);
        }
    }

    #[test]
    fn strategic_merge_patch_equals_merge_patch_without_lists(target in arb_json(), patch in arb_json_without_lists()) {
        prop_assume!(patch.is_object() && !has_list_or_directive(&patch));
        let out = strategic_merge_patch(&target, &patch, "Pod").unwrap();
        let mut want = if target.is_object() { target.clone() } else { json!({}) };
        json_merge_patch(&mut want, &patch);
        prop_assert_eq!(out, want);
    }

    #[test]
    fn strategic_merge_patch_on_pods(pod in arb_pod(false), patch in arb_pod(true)) {
        let pod = as_object(pod);
        let before = container_names(&pod);
        match strategic_merge_patch(&pod, &patch, "Pod") {
            Ok(out) => {
                prop_assert!(!has_directive(&out), "directive leaked: {}", out);
                let after = container_names(&out);
                // Merge keys stay unique, unless `$patch: replace` asks for the patch's
                // list as it is (duplicates included, as upstream).
                let text = patch.to_string();
                if !text.contains("\"replace\"") {
                    let mut dedup = after.clone();
                    dedup.sort();
                    dedup.dedup();
                    prop_assert_eq!(dedup.len(), after.len(), "{:?}", after);
                }
                // Without replace or delete directives, no container is lost.
                if !text.contains("\"$patch\"") {
                    for name in &before {
                        prop_assert!(after.contains(name), "{} lost: {:?} -> {:?}", name, before, after);
                    }
                }
                // Labels: patched ones set, nulls gone, others kept.
                let labels = out.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in patch.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
                    match v {
                        Value::Null => prop_assert!(!labels.contains_key(k)),
                        v => prop_assert_eq!(labels.get(k), Some(v)),
                    }
                }
            }
            Err(e) => {
                // Only the deliberately bogus directives fail.
                let text = patch.to_string();
                prop_assert!(text.contains("bogus") || text.contains("\"merge\""), "unexpected error {} for {}", e, text);
            }
        }
    }
}
