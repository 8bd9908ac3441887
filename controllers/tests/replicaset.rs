//! ReplicaSet controller: scaling, the choice of pods to delete, adoption and release,
//! expectations and status.

use std::collections::BTreeMap;

use controllers::podutil;
use controllers::replicaset::{
    self, Expectations, RsPlan, pod_from_template, reconcile, reconcile_with_expectations,
    should_sync,
};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

const NS: &str = "default";
const RS_UID: &str = "uid-rs-web";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("test data")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rs(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            uid: Some(RS_UID.into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: None,
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: None,
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", "web"), ("tier", "front")])),
                    annotations: Some(labels(&[("note", "x")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("nginx:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
        }),
        status: None,
    }
}

/// A pod builder.
#[derive(Clone)]
struct P {
    name: &'static str,
    labels: BTreeMap<String, String>,
    owner: Option<(&'static str, &'static str)>,
    phase: &'static str,
    ready_since: Option<i64>,
    node: Option<&'static str>,
    created: i64,
    restarts: i32,
    deleting: bool,
}

fn p(name: &'static str) -> P {
    P {
        name,
        labels: labels(&[("app", "web"), ("tier", "front")]),
        owner: Some(("web", RS_UID)),
        phase: "Running",
        ready_since: Some(0),
        node: Some("n1"),
        created: 0,
        restarts: 0,
        deleting: false,
    }
}

impl P {
    fn build(self) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(self.name.into()),
                namespace: Some(NS.into()),
                uid: Some(format!("uid-{}", self.name)),
                labels: Some(self.labels),
                creation_timestamp: Some(Time(t(self.created))),
                deletion_timestamp: self.deleting.then(|| Time(t(50))),
                owner_references: self.owner.map(|(name, uid)| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: name.into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: self.node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(self.phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if self.ready_since.is_some() {
                        "True".into()
                    } else {
                        "False".into()
                    },
                    last_transition_time: Some(Time(t(self.ready_since.unwrap_or(0)))),
                    ..Default::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    restart_count: self.restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }
}

/// What a runner does with a plan: create pods under fresh names, delete the named ones.
fn apply(pods: &mut Vec<Pod>, plan: &RsPlan, counter: &mut u32) {
    for pod in &plan.create {
        let mut pod = pod.clone();
        *counter += 1;
        let name = format!(
            "{}{counter}",
            pod.metadata.generate_name.clone().expect("test data")
        );
        pod.metadata.name = Some(name.clone());
        pod.metadata.uid = Some(format!("uid-{name}"));
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
        pods.push(pod);
    }
    pods.retain(|p| {
        !plan
            .delete
            .contains(p.metadata.name.as_ref().expect("test data"))
    });
}

#[test]
fn scales_one_to_five_to_two_deleting_the_least_valuable_pods() {
    let mut pods = Vec::new();
    let mut counter = 0;
    let plan = reconcile(&rs(1), &pods, t(10));
    assert_eq!(plan.create.len(), 1);
    assert!(plan.delete.is_empty());
    apply(&mut pods, &plan, &mut counter);

    let plan = reconcile(&rs(5), &pods, t(11));
    assert_eq!(plan.create.len(), 4);
    apply(&mut pods, &plan, &mut counter);
    assert_eq!(pods.len(), 5);
    let quiet = reconcile(&rs(5), &pods, t(12));
    assert!(quiet.create.is_empty() && quiet.delete.is_empty());
    assert_eq!(quiet.status.replicas, 5);

    // Now give the five pods distinct fates.
    let pods = vec![
        p("old-ready").node(Some("n0")).build(),
        p("unscheduled")
            .node(None)
            .phase("Pending")
            .unready()
            .build(),
        p("not-ready").node(Some("n2")).unready().build(),
        p("crashy").node(Some("n3")).restarts(5).build(),
        p("young").node(Some("n4")).created(5).build(),
    ];
    let plan = reconcile(&rs(2), &pods, t(100));
    assert!(plan.create.is_empty());
    assert_eq!(plan.delete, vec!["unscheduled", "not-ready", "crashy"]);
}

impl P {
    fn node(mut self, n: Option<&'static str>) -> Self {
        self.node = n;
        self
    }
    fn phase(mut self, ph: &'static str) -> Self {
        self.phase = ph;
        self
    }
    fn unready(mut self) -> Self {
        self.ready_since = None;
        self
    }
    fn ready_since(mut self, s: i64) -> Self {
        self.ready_since = Some(s);
        self
    }
    fn restarts(mut self, r: i32) -> Self {
        self.restarts = r;
        self
    }
    fn created(mut self, c: i64) -> Self {
        self.created = c;
        self
    }
    fn owner(mut self, o: Option<(&'static str, &'static str)>) -> Self {
        self.owner = o;
        self
    }
    fn labels(mut self, l: &[(&str, &str)]) -> Self {
        self.labels = labels(l);
        self
    }
    fn deleting(mut self) -> Self {
        self.deleting = true;
        self
    }
}

#[test]
fn deletion_ranking_follows_upstream_order() {
    // Pending before Unknown before Running (all scheduled, none ready).
    let pods = vec![
        p("running").unready().build(),
        p("unknown").phase("Unknown").unready().build(),
        p("pending").phase("Pending").unready().build(),
    ];
    assert_eq!(
        reconcile(&rs(0), &pods, t(100)).delete,
        vec!["pending", "unknown", "running"]
    );

    // Among ready pods: doubled-up nodes first, then ready for a shorter time, then newer.
    let pods = vec![
        p("alone-new")
            .node(Some("a"))
            .ready_since(90)
            .created(80)
            .build(),
        p("pair-1").node(Some("b")).ready_since(10).build(),
        p("pair-2").node(Some("b")).ready_since(20).build(),
        p("alone-old")
            .node(Some("c"))
            .ready_since(10)
            .created(1)
            .build(),
        p("alone-older")
            .node(Some("d"))
            .ready_since(10)
            .created(0)
            .build(),
    ];
    assert_eq!(
        reconcile(&rs(0), &pods, t(100)).delete,
        vec!["pair-2", "pair-1", "alone-new", "alone-old", "alone-older"]
    );

    // A lower deletion cost goes first, before colocation is considered.
    let mut cheap = p("cheap").node(Some("z")).build();
    cheap.metadata.annotations = Some(labels(&[(replicaset::POD_DELETION_COST, "-10")]));
    let pods = vec![
        p("pair-1").node(Some("b")).build(),
        p("pair-2").node(Some("b")).build(),
        cheap,
    ];
    assert_eq!(reconcile(&rs(2), &pods, t(100)).delete, vec!["cheap"]);
}

#[test]
fn adopts_matching_orphans_and_counts_them() {
    let pods = vec![p("orphan").owner(None).build()];
    let plan = reconcile(&rs(1), &pods, t(10));
    assert_eq!(plan.adopt, vec!["orphan"]);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.status.replicas, 1);

    // The runner's adoption: the controller reference to the ReplicaSet.
    let mut meta = pods[0].metadata.clone();
    podutil::adopt(&mut meta, replicaset::controller_ref(&rs(1)));
    let r = podutil::controller_of(&meta).unwrap();
    assert_eq!(
        (
            r.api_version.as_str(),
            r.kind.as_str(),
            r.name.as_str(),
            r.uid.as_str()
        ),
        ("apps/v1", "ReplicaSet", "web", RS_UID)
    );
    assert_eq!(r.block_owner_deletion, Some(true));

    // Orphans that do not match, or are being deleted, are left alone.
    let pods = vec![
        p("stranger").owner(None).labels(&[("app", "db")]).build(),
        p("dying").owner(None).deleting().build(),
    ];
    let plan = reconcile(&rs(1), &pods, t(10));
    assert!(plan.adopt.is_empty());
    assert_eq!(plan.create.len(), 1);
}

#[test]
fn releases_controlled_pods_that_no_longer_match() {
    let pods = vec![
        p("relabelled").labels(&[("app", "debug")]).build(),
        p("kept").build(),
    ];
    let plan = reconcile(&rs(2), &pods, t(10));
    assert_eq!(plan.release, vec!["relabelled"]);
    assert_eq!(plan.create.len(), 1, "the released pod is replaced");
    assert_eq!(plan.status.replicas, 1);
}

#[test]
fn ignores_pods_of_other_controllers() {
    let pods = vec![
        p("theirs").owner(Some(("other", "uid-other"))).build(),
        p("mine").build(),
    ];
    let plan = reconcile(&rs(1), &pods, t(10));
    assert!(plan.adopt.is_empty() && plan.release.is_empty());
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.status.replicas, 1);

    // Nor does it scale down into them.
    let plan = reconcile(&rs(0), &pods, t(10));
    assert_eq!(plan.delete, vec!["mine"]);
}

#[test]
fn finished_and_terminating_pods_are_replaced() {
    let pods = vec![
        p("done").phase("Succeeded").build(),
        p("failed").phase("Failed").build(),
        p("leaving").deleting().build(),
    ];
    let plan = reconcile(&rs(2), &pods, t(10));
    assert_eq!(plan.create.len(), 2);
    assert_eq!(plan.status.replicas, 0);
}

#[test]
fn a_deleting_replicaset_adopts_and_creates_nothing() {
    let mut set = rs(3);
    set.metadata.deletion_timestamp = Some(Time(t(5)));
    let pods = vec![
        p("orphan").owner(None).build(),
        p("relabelled").labels(&[("app", "x")]).build(),
    ];
    let plan = reconcile(&set, &pods, t(10));
    assert!(plan.adopt.is_empty() && plan.release.is_empty());
    assert!(plan.create.is_empty() && plan.delete.is_empty());
}

#[test]
fn creations_are_capped_at_the_burst() {
    let plan = reconcile(&rs(1200), &[], t(0));
    assert_eq!(plan.create.len(), replicaset::BURST_REPLICAS);
}

#[test]
fn expectations_block_double_creation_until_observed_or_expired() {
    let set = rs(3);
    let mut exp = Expectations::new();
    assert!(should_sync(&exp, t(0)));

    let plan = reconcile_with_expectations(&set, &[], &exp, t(0));
    assert_eq!(plan.create.len(), 3);
    exp.expect_creations(plan.create.len(), t(0));

    // The informer has not seen the new pods yet: a resync must not create them again.
    let again = reconcile_with_expectations(&set, &[], &exp, t(1));
    assert!(again.create.is_empty());
    assert!(!should_sync(&exp, t(1)));

    exp.creation_observed();
    exp.creation_observed();
    assert!(!should_sync(&exp, t(2)));
    exp.creation_observed();
    assert!(should_sync(&exp, t(2)));

    // Deletions are tracked by name.
    exp.expect_deletions(["a", "b"], t(3));
    exp.deletion_observed("zzz");
    exp.deletion_observed("a");
    assert_eq!(exp.pending(), (0, 1));
    assert!(!should_sync(&exp, t(4)));
    exp.deletion_observed("b");
    assert!(should_sync(&exp, t(4)));

    // Unfulfilled expectations stop blocking after five minutes.
    exp.expect_creations(2, t(10));
    assert!(!should_sync(&exp, t(10 + 300)));
    assert!(should_sync(&exp, t(10 + 301)));
    let after = SignedDuration::from_secs(301);
    assert!(exp.satisfied(t(10).checked_add(after).unwrap()));
}

#[test]
fn pod_from_template_copies_the_template() {
    let pod = pod_from_template(&rs(1));
    let meta = &pod.metadata;
    assert_eq!(meta.generate_name.as_deref(), Some("web-"));
    assert_eq!(meta.name, None);
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    assert_eq!(
        meta.labels,
        Some(labels(&[("app", "web"), ("tier", "front")]))
    );
    assert_eq!(meta.annotations, Some(labels(&[("note", "x")])));
    assert!(podutil::is_controlled_by(
        meta,
        "ReplicaSet",
        &rs(1).metadata
    ));
    let spec = pod.spec.unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1"));
}

#[test]
fn status_counts_ready_available_and_fully_labeled_pods() {
    let mut set = rs(4);
    set.spec.as_mut().unwrap().min_ready_seconds = Some(10);
    let pods = vec![
        p("long-ready").ready_since(0).build(),
        p("just-ready").ready_since(95).build(),
        p("not-ready").unready().build(),
        p("partial").labels(&[("app", "web")]).build(),
        p("gone").deleting().build(),
    ];
    let plan = reconcile(&set, &pods, t(100));
    let s = &plan.status;
    assert_eq!(s.replicas, 4);
    assert_eq!(s.fully_labeled_replicas, Some(3));
    assert_eq!(s.ready_replicas, Some(3));
    assert_eq!(s.available_replicas, Some(2));
    assert_eq!(s.observed_generation, Some(3));
    // "just-ready" becomes available 10s after t(95): resync 5s (plus slack) from now.
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(6)));
    assert!(plan.create.is_empty());

    // Zero counts are omitted, as the API stores them.
    let empty = reconcile(&rs(0), &[], t(0)).status;
    assert_eq!(empty.replicas, 0);
    assert_eq!(empty.ready_replicas, None);
    assert_eq!(empty.available_replicas, None);
}

#[test]
fn an_empty_selector_selects_nothing() {
    let mut set = rs(2);
    set.spec.as_mut().unwrap().selector = LabelSelector::default();
    let pods = vec![p("orphan").owner(None).build()];
    let plan = reconcile(&set, &pods, t(0));
    assert!(plan.adopt.is_empty() && plan.create.is_empty());
}
