//! Namespace controller logic: emptying a terminating namespace and finalizing it.

use std::collections::BTreeMap;

use controllers::namespace::{self, Content, Remaining};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
}

fn ns(extra: Value) -> Namespace {
    let mut v = json!({
        "metadata": {"name": "team", "uid": "ns-uid", "deletionTimestamp": at(0).to_string()},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating"}
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut v, extra) {
        for (k, val) in e {
            b.insert(k, val);
        }
    }
    serde_json::from_value(v).expect("namespace")
}

fn condition<'a>(
    conds: &'a [k8s_openapi::api::core::v1::NamespaceCondition],
    t: &str,
) -> &'a k8s_openapi::api::core::v1::NamespaceCondition {
    conds.iter().find(|c| c.type_ == t).expect(t)
}

#[test]
fn active_or_finished_namespaces_are_left_alone() {
    let active = ns(json!({"metadata": {"name": "team"}, "status": {"phase": "Active"}}));
    let content = Content::from_counts([("pods", 3)]);
    assert!(namespace::plan(&active, &content, at(1)).is_empty());
    let finished = ns(json!({"spec": {"finalizers": []}}));
    assert!(namespace::plan(&finished, &content, at(1)).is_empty());
}

#[test]
fn content_is_deleted_before_finalizing() {
    let n = ns(json!({"status": {"phase": "Active"}}));
    let mut content =
        Content::from_counts([("pods", 3usize), ("configmaps", 0), ("deployments.apps", 1)]);
    content.remaining.insert(
        "widgets.example.com".into(),
        Remaining {
            count: 2,
            finalizers: BTreeMap::from([("example.com/cleanup".to_string(), 2)]),
        },
    );
    let plan = namespace::plan(&n, &content, at(10));
    assert!(plan.set_terminating);
    assert_eq!(
        plan.delete,
        ["deployments.apps", "pods", "widgets.example.com"]
    );
    assert_eq!(plan.finalize, None);
    let conds = plan.conditions.expect("conditions");
    assert_eq!(conds.len(), 5);
    let remaining = condition(&conds, namespace::COND_CONTENT_REMAINING);
    assert_eq!(
        (remaining.status.as_str(), remaining.reason.as_deref()),
        ("True", Some("SomeResourcesRemain"))
    );
    assert!(
        remaining
            .message
            .as_deref()
            .is_some_and(|m| m.contains("pods") && m.contains("deployments.apps"))
    );
    let fin = condition(&conds, namespace::COND_FINALIZERS_REMAINING);
    assert_eq!(
        (fin.status.as_str(), fin.reason.as_deref()),
        ("True", Some("SomeFinalizersRemain"))
    );
    assert!(
        fin.message
            .as_deref()
            .is_some_and(|m| m.contains("example.com/cleanup"))
    );
    let ok = condition(&conds, namespace::COND_DISCOVERY_FAILURE);
    assert_eq!(
        (ok.status.as_str(), ok.reason.as_deref()),
        ("False", Some("ResourcesDiscovered"))
    );
    assert_eq!(
        remaining.last_transition_time.as_ref().map(|t| t.0),
        Some(at(10))
    );

    // Same observation again: conditions unchanged, deletes repeated.
    let mut n2 = ns(json!({}));
    n2.status.as_mut().expect("status").conditions = Some(conds.clone());
    let plan = namespace::plan(&n2, &content, at(20));
    assert!(!plan.set_terminating);
    assert_eq!(plan.conditions, None);
    assert_eq!(plan.delete.len(), 3);

    // Everything gone: conditions flip (new transition time), the finalizer goes.
    let empty = Content::from_counts([("pods", 0usize), ("deployments.apps", 0)]);
    let plan = namespace::plan(&n2, &empty, at(30));
    assert!(plan.delete.is_empty());
    assert_eq!(plan.finalize, Some(vec![]));
    let conds = plan.conditions.expect("conditions");
    let remaining = condition(&conds, namespace::COND_CONTENT_REMAINING);
    assert_eq!(
        (remaining.status.as_str(), remaining.reason.as_deref()),
        ("False", Some("ContentRemoved"))
    );
    assert_eq!(
        remaining.last_transition_time.as_ref().map(|t| t.0),
        Some(at(30))
    );
    // Unchanged condition keeps its time.
    let ok = condition(&conds, namespace::COND_DISCOVERY_FAILURE);
    assert_eq!(ok.last_transition_time.as_ref().map(|t| t.0), Some(at(10)));
}

#[test]
fn other_finalizers_are_kept_and_failures_block_finalizing() {
    let n = ns(json!({"spec": {"finalizers": ["example.com/audit", "kubernetes"]}}));
    let plan = namespace::plan(&n, &Content::default(), at(1));
    assert_eq!(plan.finalize, Some(vec!["example.com/audit".to_string()]));

    // Already finalized by us, another finalizer pending: nothing to remove.
    let n = ns(json!({"spec": {"finalizers": ["example.com/audit"]}}));
    let plan = namespace::plan(&n, &Content::default(), at(1));
    assert_eq!(plan.finalize, None);

    // Discovery failed: some resources could not be listed, so no finalizing.
    let n = ns(json!({}));
    let content = Content {
        discovery_failures: vec!["metrics.example.com/v1".into()],
        ..Default::default()
    };
    let plan = namespace::plan(&n, &content, at(1));
    assert_eq!(plan.finalize, None);
    let conds = plan.conditions.expect("conditions");
    let c = condition(&conds, namespace::COND_DISCOVERY_FAILURE);
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("True", Some("DiscoveryFailed"))
    );

    let content = Content {
        deletion_errors: vec!["pods: forbidden".into()],
        ..Default::default()
    };
    let plan = namespace::plan(&n, &content, at(1));
    assert_eq!(plan.finalize, None);
    let conds = plan.conditions.expect("conditions");
    assert_eq!(
        condition(&conds, namespace::COND_CONTENT_FAILURE).status,
        "True"
    );
}
