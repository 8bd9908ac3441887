//! Deployment controller, driven together with the ReplicaSet controller and a toy kubelet
//! through simulated syncs: first rollout, rolling and recreate updates, rollback, status and
//! conditions, history cleanup, pausing and proportional scaling.

use std::collections::{BTreeMap, BTreeSet};

use controllers::deployment::{
    self, DeploymentPlan, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, condition,
    pod_template_hash, reason, reconcile,
};
use controllers::podutil;
use controllers::replicaset;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStrategy, ReplicaSet,
    ReplicaSetSpec, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

const NS: &str = "default";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn rolling(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            uid: Some("uid-deploy-web".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: None,
            },
            template: template("web:1"),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn recreate(replicas: i32) -> Deployment {
    let mut d = rolling(replicas, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().expect("test data").strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    d
}

/// `kubectl rollout status`'s verdict: `Ok(true)` once rolled out, `Err` after the deadline.
fn rollout_status(d: &Deployment) -> Result<bool, String> {
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok(false);
    }
    let progressing = find(&status.conditions, condition::PROGRESSING);
    if progressing.and_then(|c| c.reason.as_deref()) == Some(reason::TIMED_OUT) {
        return Err("exceeded its progress deadline".into());
    }
    let v = |x: Option<i32>| x.unwrap_or(0);
    let desired = d.spec.as_ref().expect("test data").replicas.unwrap_or(1);
    Ok(v(status.updated_replicas) >= desired
        && v(status.replicas) <= v(status.updated_replicas)
        && v(status.available_replicas) >= v(status.updated_replicas))
}

fn find<'a>(
    conditions: &'a Option<Vec<DeploymentCondition>>,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    conditions.as_deref()?.iter().find(|c| c.type_ == type_)
}

/// A namespace with one Deployment, its ReplicaSets and pods, the two controllers and a
/// kubelet that starts pods one tick after they are created (unless their image is broken)
/// and removes terminating pods one tick after their deletion.
struct Cluster {
    now: Timestamp,
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    broken_images: BTreeSet<String>,
    next_id: u32,
    /// Every Deployment plan applied, in order.
    plans: Vec<DeploymentPlan>,
}

impl Cluster {
    fn new(d: Deployment) -> Self {
        Cluster {
            now: Timestamp::from_second(1_700_000_000).expect("test data"),
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            broken_images: BTreeSet::new(),
            next_id: 0,
            plans: Vec::new(),
        }
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn spec_mut(&mut self) -> &mut DeploymentSpec {
        let g = self.d.metadata.generation.unwrap_or(0);
        self.d.metadata.generation = Some(g + 1);
        self.d.spec.as_mut().expect("test data")
    }

    fn set_image(&mut self, image: &str) {
        self.spec_mut().template = template(image);
    }

    fn rs_named(&self, name: &str) -> &ReplicaSet {
        self.rss
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .expect("test data")
    }

    fn image_of(rs: &ReplicaSet) -> String {
        rs.spec
            .as_ref()
            .expect("test data")
            .template
            .as_ref()
            .expect("test data")
            .spec
            .as_ref()
            .expect("test data")
            .containers[0]
            .image
            .clone()
            .expect("test data")
    }

    /// `(image, spec.replicas)` of every ReplicaSet, sorted by image.
    fn sizes(&self) -> Vec<(String, i32)> {
        let mut v: Vec<_> = self
            .rss
            .iter()
            .map(|r| {
                (
                    Self::image_of(r),
                    r.spec
                        .as_ref()
                        .expect("test data")
                        .replicas
                        .expect("test data"),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn rs_for_image(&self, image: &str) -> &ReplicaSet {
        self.rss
            .iter()
            .find(|r| Self::image_of(r) == image)
            .expect("test data")
    }

    fn sync_deployment(&mut self) -> DeploymentPlan {
        let plan = reconcile(&self.d, &self.rss, &self.pods, self.now);
        if let Some(rs) = &plan.create_rs {
            let mut rs = rs.clone();
            let id = self.id();
            rs.metadata.uid = Some(format!("uid-rs-{id}"));
            rs.metadata.creation_timestamp = Some(Time(self.now));
            rs.metadata.generation = Some(1);
            assert!(
                self.rss.iter().all(|r| r.metadata.name != rs.metadata.name),
                "name taken"
            );
            self.rss.push(rs);
        }
        for rs in &mut self.rss {
            if plan.apply_to_rs(rs) {
                rs.metadata.generation = Some(rs.metadata.generation.unwrap_or(0) + 1);
            }
            let name = rs.metadata.name.clone().expect("test data");
            if plan.adopt.contains(&name) {
                podutil::adopt(&mut rs.metadata, deployment::controller_ref(&self.d));
            }
            if plan.release.contains(&name) {
                podutil::release(&mut rs.metadata, "uid-deploy-web");
            }
        }
        self.rss.retain(|r| {
            !plan
                .delete_rs
                .contains(r.metadata.name.as_ref().expect("test data"))
        });
        if let Some(rev) = &plan.deployment_revision {
            self.d
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(REVISION_ANNOTATION.into(), rev.clone());
        }
        self.d.status = Some(plan.status.clone());
        self.plans.push(plan.clone());
        plan
    }

    fn sync_replicasets(&mut self) {
        for i in 0..self.rss.len() {
            let plan = replicaset::reconcile(&self.rss[i], &self.pods, self.now);
            for pod in plan.create {
                let mut pod = pod;
                let id = self.id();
                let name = format!(
                    "{}{id}",
                    pod.metadata.generate_name.clone().expect("test data")
                );
                pod.metadata.name = Some(name);
                pod.metadata.uid = Some(format!("uid-pod-{id}"));
                pod.metadata.creation_timestamp = Some(Time(self.now));
                pod.status = Some(PodStatus {
                    phase: Some("Pending".into()),
                    ..Default::default()
                });
                self.pods.push(pod);
            }
            for pod in &mut self.pods {
                if plan
                    .delete
                    .contains(pod.metadata.name.as_ref().expect("test data"))
                {
                    pod.metadata.deletion_timestamp = Some(Time(self.now));
                }
            }
            self.rss[i].status = Some(plan.status);
        }
    }

    fn kubelet(&mut self) {
        let now = self.now;
        self.pods.retain(|p| {
            p.metadata
                .deletion_timestamp
                .as_ref()
                .is_none_or(|t| t.0 >= now)
        });
        for pod in &mut self.pods {
            let created = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .expect("test data")
                .0;
            let image = pod.spec.as_ref().expect("test data").containers[0]
                .image
                .clone()
                .expect("test data");
            let status = pod.status.get_or_insert_with(Default::default);
            if created >= now || status.phase.as_deref() == Some("Running") {
                continue;
            }
            pod.spec.as_mut().expect("test data").node_name = Some("node-1".into());
            status.phase = Some("Running".into());
            if !self.broken_images.contains(&image) {
                status.conditions = Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now)),
                    ..Default::default()
                }]);
            }
        }
    }

    fn active_pods(&self) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| podutil::is_pod_active(p))
            .collect()
    }

    fn available_pods(&self) -> usize {
        self.active_pods()
            .into_iter()
            .filter(|p| podutil::is_pod_available(p, 0, self.now))
            .count()
    }

    /// One round: both controllers sync, the kubelet acts, the ReplicaSet controller
    /// refreshes statuses. `check` runs after every step that changes pods.
    fn tick_checked(&mut self, check: &mut dyn FnMut(&Cluster)) -> DeploymentPlan {
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("test data");
        let plan = self.sync_deployment();
        self.sync_replicasets();
        check(self);
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("test data");
        self.kubelet();
        check(self);
        self.sync_replicasets();
        plan
    }

    fn tick(&mut self) -> DeploymentPlan {
        self.tick_checked(&mut |_| {})
    }

    /// Ticks until `kubectl rollout status` would succeed (and the status is stable).
    fn roll_out(&mut self, check: &mut dyn FnMut(&Cluster)) -> usize {
        for n in 1..100 {
            self.tick_checked(check);
            if rollout_status(&self.d) == Ok(true) && self.sync_deployment().create_rs.is_none() {
                return n;
            }
        }
        panic!("never rolled out: {:?}", self.sizes());
    }
}

fn progressing(d: &Deployment) -> DeploymentCondition {
    find(
        &d.status.as_ref().expect("test data").conditions,
        condition::PROGRESSING,
    )
    .cloned()
    .expect("test data")
}

fn available(d: &Deployment) -> DeploymentCondition {
    find(
        &d.status.as_ref().expect("test data").conditions,
        condition::AVAILABLE,
    )
    .cloned()
    .expect("test data")
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<String> {
    rs.metadata.annotations.as_ref()?.get(key).cloned()
}

#[test]
fn first_sync_creates_the_new_replicaset_with_hash_and_revision_1() {
    let d = rolling(
        3,
        IntOrString::String("25%".into()),
        IntOrString::String("25%".into()),
    );
    let plan = reconcile(&d, &[], &[], Timestamp::from_second(1_700_000_000).unwrap());
    let rs = plan.create_rs.clone().unwrap();
    let hash = pod_template_hash(&template("web:1"));
    assert!(hash.len() <= 10 && !hash.is_empty());
    assert_eq!(rs.metadata.name, Some(format!("web-{hash}")));
    assert_eq!(rs.metadata.namespace.as_deref(), Some(NS));
    let want = labels(&[("app", "web"), (POD_TEMPLATE_HASH_LABEL, &hash)]);
    assert_eq!(rs.metadata.labels.as_ref(), Some(&want));
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&want));
    let tmeta = spec.template.as_ref().unwrap().metadata.as_ref().unwrap();
    assert_eq!(tmeta.labels.as_ref(), Some(&want));
    // 3 replicas, surge 25% rounds up to 1: all 3 may start at once.
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(annotation(&rs, REVISION_ANNOTATION).as_deref(), Some("1"));
    assert_eq!(
        annotation(&rs, deployment::DESIRED_REPLICAS_ANNOTATION).as_deref(),
        Some("3")
    );
    assert_eq!(
        annotation(&rs, deployment::MAX_REPLICAS_ANNOTATION).as_deref(),
        Some("4")
    );
    assert!(podutil::is_controlled_by(
        &rs.metadata,
        "Deployment",
        &d.metadata
    ));
    assert_eq!(plan.deployment_revision.as_deref(), Some("1"));
    let cond = find(&plan.status.conditions, condition::PROGRESSING).unwrap();
    assert_eq!(cond.reason.as_deref(), Some(reason::NEW_RS_CREATED));
    assert_eq!(plan.status.observed_generation, Some(1));
    assert!(plan.requeue_after.is_some());
    // The hash is stable.
    assert_eq!(hash, pod_template_hash(&template("web:1")));
    assert_ne!(hash, pod_template_hash(&template("web:2")));
}

#[test]
fn rolls_out_and_reports_complete_status_and_conditions() {
    let mut c = Cluster::new(rolling(3, IntOrString::Int(1), IntOrString::Int(0)));
    c.roll_out(&mut |_| {});
    let d = &c.d;
    let status = d.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.replicas, Some(3));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(status.unavailable_replicas, None);
    let a = available(d);
    assert_eq!(
        (a.status.as_str(), a.reason.as_deref()),
        ("True", Some(reason::MINIMUM_REPLICAS_AVAILABLE))
    );
    let p = progressing(d);
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("True", Some(reason::NEW_RS_AVAILABLE))
    );
    assert!(p.last_update_time.is_some() && p.last_transition_time.is_some());
    assert_eq!(rollout_status(d), Ok(true));
    assert_eq!(c.active_pods().len(), 3);
    assert!(c.active_pods().iter().all(|p| {
        p.metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key(POD_TEMPLATE_HASH_LABEL)
    }));
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION],
        "1"
    );

    // Once complete, further syncs change nothing.
    let before = c.d.status.clone();
    let plan = c.sync_deployment();
    assert_eq!(plan.status, before.clone().unwrap());
    assert!(plan.scale.is_empty() && plan.create_rs.is_none());
    assert_eq!(plan.requeue_after, None);

    // While it was rolling out, the status said so.
    let reasons: Vec<_> = c
        .plans
        .iter()
        .filter_map(|p| find(&p.status.conditions, condition::PROGRESSING))
        .filter_map(|c| c.reason.clone())
        .collect();
    assert_eq!(
        reasons.first().map(String::as_str),
        Some(reason::NEW_RS_CREATED)
    );
    let first = &c.plans[0].status;
    assert_eq!(
        find(&first.conditions, condition::AVAILABLE)
            .unwrap()
            .status,
        "False"
    );
    assert_eq!(
        rollout_status(&Deployment {
            status: Some(first.clone()),
            ..c.d.clone()
        }),
        Ok(false)
    );
}

#[test]
fn image_change_rolls_step_by_step_within_surge_and_unavailability() {
    let mut c = Cluster::new(rolling(4, IntOrString::Int(1), IntOrString::Int(1)));
    c.roll_out(&mut |_| {});
    let v1 = c.rs_for_image("web:1").metadata.name.clone().unwrap();

    c.set_image("web:2");
    // The first sync creates revision 2 with one surge pod and retires one old pod.
    let plan = c.sync_deployment();
    let new = plan.create_rs.clone().unwrap();
    assert_eq!(annotation(&new, REVISION_ANNOTATION).as_deref(), Some("2"));
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(plan.scale, vec![(v1.clone(), 3)]);
    assert_eq!(plan.deployment_revision.as_deref(), Some("2"));
    assert_eq!(rollout_status(&c.d), Ok(false));
    c.sync_replicasets();

    let mut sizes_seen = vec![c.sizes()];
    let check = |c: &Cluster| {
        assert!(
            c.available_pods() >= 3,
            "availability fell to {} at {:?}",
            c.available_pods(),
            c.sizes()
        );
        assert!(c.active_pods().len() <= 5, "surged past 5: {:?}", c.sizes());
    };
    let n = c.roll_out(&mut |c| {
        check(c);
        if sizes_seen.last() != Some(&c.sizes()) {
            sizes_seen.push(c.sizes());
        }
    });
    assert!(n > 2, "a rolling update takes several steps");
    // The new ReplicaSet grew and the old one shrank gradually.
    for w in sizes_seen.windows(2) {
        let (old_a, new_a) = (w[0][0].1, w[0][1].1);
        let (old_b, new_b) = (w[1][0].1, w[1][1].1);
        assert!(new_b - new_a <= 2 && old_a - old_b <= 2, "{sizes_seen:?}");
        assert!(new_b >= new_a && old_b <= old_a, "{sizes_seen:?}");
    }
    assert_eq!(
        c.sizes(),
        vec![("web:1".to_string(), 0), ("web:2".to_string(), 4)]
    );
    assert_eq!(c.active_pods().len(), 4);
    assert_eq!(
        progressing(&c.d).reason.as_deref(),
        Some(reason::NEW_RS_AVAILABLE)
    );
    assert_eq!(c.d.status.as_ref().unwrap().observed_generation, Some(2));
    assert!(c.plans.iter().any(|p| {
        find(&p.status.conditions, condition::PROGRESSING)
            .is_some_and(|c| c.reason.as_deref() == Some(reason::RS_UPDATED))
    }));
}

#[test]
fn percentages_resolve_like_upstream() {
    // 10 replicas, 25%/25%: surge rounds up to 3, unavailable down to 2.
    let mut c = Cluster::new(rolling(
        10,
        IntOrString::String("25%".into()),
        IntOrString::String("25%".into()),
    ));
    c.roll_out(&mut |_| {});
    c.set_image("web:2");
    let plan = c.sync_deployment();
    assert_eq!(plan.create_rs.unwrap().spec.unwrap().replicas, Some(3));
    assert_eq!(plan.scale.len(), 1);
    assert_eq!(plan.scale[0].1, 8);
    c.sync_replicasets();
    c.roll_out(&mut |c| {
        assert!(c.available_pods() >= 8);
        assert!(c.active_pods().len() <= 13);
    });

    // Both zero after rounding: one pod may be unavailable.
    let mut c = Cluster::new(rolling(
        2,
        IntOrString::String("0%".into()),
        IntOrString::String("10%".into()),
    ));
    c.roll_out(&mut |_| {});
    c.set_image("web:2");
    c.roll_out(&mut |c| {
        assert!(c.available_pods() >= 1);
        assert!(c.active_pods().len() <= 2);
    });
}

#[test]
fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let mut c = Cluster::new(recreate(3));
    c.roll_out(&mut |_| {});
    c.set_image("web:2");
    let plan = c.sync_deployment();
    assert!(
        plan.create_rs.is_none(),
        "no new ReplicaSet while old pods run"
    );
    assert_eq!(plan.scale.len(), 1);
    assert_eq!(plan.scale[0].1, 0);
    c.sync_replicasets();

    let mut created_at_tick = None;
    let mut tick = 0;
    c.roll_out(&mut |c| {
        tick += 1;
        let images: BTreeSet<String> = c
            .pods
            .iter()
            .map(|p| {
                p.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap()
            })
            .collect();
        assert!(images.len() <= 1, "old and new pods together: {images:?}");
        if created_at_tick.is_none() && c.rss.len() == 2 {
            created_at_tick = Some(tick);
        }
    });
    assert!(created_at_tick.is_some_and(|t| t > 1));
    assert_eq!(
        c.sizes(),
        vec![("web:1".to_string(), 0), ("web:2".to_string(), 3)]
    );
    let new = c.rs_for_image("web:2");
    assert_eq!(annotation(new, REVISION_ANNOTATION).as_deref(), Some("2"));
    assert_eq!(rollout_status(&c.d), Ok(true));
}

#[test]
fn rollback_reuses_the_old_replicaset_under_a_new_revision() {
    let mut c = Cluster::new(rolling(2, IntOrString::Int(1), IntOrString::Int(0)));
    c.roll_out(&mut |_| {});
    c.set_image("web:2");
    c.roll_out(&mut |_| {});
    let v1 = c.rs_for_image("web:1").metadata.name.clone().unwrap();
    assert_eq!(c.rss.len(), 2);

    // `kubectl rollout undo`: the template of revision 1, without its hash label.
    let mut undo = c.rs_named(&v1).spec.clone().unwrap().template.unwrap();
    undo.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove(POD_TEMPLATE_HASH_LABEL);
    c.spec_mut().template = undo;

    let plan = c.sync_deployment();
    assert!(plan.create_rs.is_none());
    let (name, annotations) = plan
        .update_rs_annotations
        .iter()
        .find(|(n, _)| *n == v1)
        .unwrap();
    assert_eq!(name, &v1);
    assert_eq!(annotations[REVISION_ANNOTATION], "3");
    assert_eq!(annotations[deployment::REVISION_HISTORY_ANNOTATION], "1");
    assert_eq!(plan.deployment_revision.as_deref(), Some("3"));
    assert!(plan.scale.contains(&(v1.clone(), 1)));
    c.sync_replicasets();
    c.roll_out(&mut |c| assert!(c.available_pods() >= 2));
    assert_eq!(c.rss.len(), 2);
    assert_eq!(
        c.sizes(),
        vec![("web:1".to_string(), 2), ("web:2".to_string(), 0)]
    );
    assert_eq!(
        annotation(c.rs_named(&v1), REVISION_ANNOTATION).as_deref(),
        Some("3")
    );
    assert_eq!(
        c.d.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION],
        "3"
    );
}

#[test]
fn old_replicasets_beyond_the_history_limit_are_deleted_oldest_first() {
    let mut d = rolling(1, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().unwrap().revision_history_limit = Some(2);
    let mut c = Cluster::new(d);
    for v in 1..=5 {
        if v > 1 {
            c.set_image(&format!("web:{v}"));
        }
        c.roll_out(&mut |_| {});
    }
    // One more sync after completion runs the cleanup.
    c.tick();
    let mut revisions: Vec<String> = c
        .rss
        .iter()
        .map(|r| annotation(r, REVISION_ANNOTATION).unwrap())
        .collect();
    revisions.sort();
    assert_eq!(revisions, vec!["3", "4", "5"]);
    let deleted: Vec<String> = c.plans.iter().flat_map(|p| p.delete_rs.clone()).collect();
    assert_eq!(deleted.len(), 2);

    // An old ReplicaSet that still has replicas is never deleted.
    let mut d = rolling(1, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().unwrap().revision_history_limit = Some(0);
    let mut c = Cluster::new(d);
    c.roll_out(&mut |_| {});
    c.broken_images.insert("web:2".into());
    c.set_image("web:2");
    for _ in 0..5 {
        assert!(c.tick().delete_rs.is_empty());
    }
    assert_eq!(c.rss.len(), 2);
}

#[test]
fn paused_deployments_do_not_roll_but_keep_status_and_scale() {
    let mut c = Cluster::new(rolling(2, IntOrString::Int(1), IntOrString::Int(0)));
    c.roll_out(&mut |_| {});
    c.spec_mut().paused = Some(true);
    c.set_image("web:2");
    for _ in 0..3 {
        let plan = c.tick();
        assert!(plan.create_rs.is_none());
    }
    assert_eq!(c.rss.len(), 1);
    let p = progressing(&c.d);
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("Unknown", Some(reason::PAUSED))
    );
    let status = c.d.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, c.d.metadata.generation);

    // Scaling a paused Deployment still resizes it.
    c.spec_mut().replicas = Some(4);
    c.tick();
    c.tick();
    assert_eq!(c.sizes(), vec![("web:1".to_string(), 4)]);

    // Resuming rolls out the pending template.
    c.spec_mut().paused = Some(false);
    let plan = c.sync_deployment();
    assert!(plan.create_rs.is_some());
    let p = progressing(&c.d);
    assert_eq!(p.reason.as_deref(), Some(reason::NEW_RS_CREATED));
    c.sync_replicasets();
    c.roll_out(&mut |_| {});
    assert_eq!(
        c.sizes(),
        vec![("web:1".to_string(), 0), ("web:2".to_string(), 4)]
    );
}

#[test]
fn a_stuck_rollout_times_out_after_the_progress_deadline() {
    let mut d = rolling(2, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(30);
    let mut c = Cluster::new(d);
    c.roll_out(&mut |_| {});
    c.broken_images.insert("web:2".into());
    c.set_image("web:2");
    let plan = c.tick();
    let wait = plan.requeue_after.unwrap();
    assert!(wait.as_secs() > 25 && wait.as_secs() <= 31, "{wait:?}");
    // Each tick is two seconds.
    for _ in 0..10 {
        c.tick();
    }
    assert_eq!(rollout_status(&c.d), Ok(false));
    let p = progressing(&c.d);
    assert_eq!(p.status, "True");
    // Availability never suffered: the old pods keep serving.
    assert_eq!(available(&c.d).status, "True");
    assert_eq!(c.available_pods(), 2);
    for _ in 0..10 {
        c.tick();
    }
    let p = progressing(&c.d);
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("False", Some(reason::TIMED_OUT))
    );
    assert!(rollout_status(&c.d).is_err());
    assert_eq!(c.sync_deployment().requeue_after, None);

    // Fixing the template rolls out again and clears the failure.
    c.broken_images.clear();
    c.set_image("web:3");
    c.roll_out(&mut |_| {});
    assert_eq!(
        progressing(&c.d).reason.as_deref(),
        Some(reason::NEW_RS_AVAILABLE)
    );
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut c = Cluster::new(rolling(10, IntOrString::Int(3), IntOrString::Int(2)));
    c.roll_out(&mut |_| {});
    c.broken_images.insert("web:2".into());
    c.set_image("web:2");
    for _ in 0..4 {
        c.tick();
    }
    // Stuck: 13 pods allowed, the old set keeps 8 available.
    assert_eq!(
        c.sizes(),
        vec![("web:1".to_string(), 8), ("web:2".to_string(), 5)]
    );
    c.spec_mut().replicas = Some(20);
    let plan = c.sync_deployment();
    // 13 -> 23 (20 + surge 3): +10 split 8:5 by size, leftovers to the largest.
    assert!(plan.create_rs.is_none());
    let mut sizes: Vec<i32> = plan.scale.iter().map(|(_, n)| *n).collect();
    sizes.sort();
    assert_eq!(sizes, vec![9, 14]);
    assert_eq!(plan.scale.iter().map(|(_, n)| n).sum::<i32>(), 23);
}

#[test]
fn adopts_orphaned_replicasets_and_ignores_foreign_ones() {
    let d = rolling(2, IntOrString::Int(1), IntOrString::Int(0));
    let hash = pod_template_hash(&template("web:1"));
    let mut t = template("web:1");
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let orphan = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            namespace: Some(NS.into()),
            uid: Some("uid-orphan".into()),
            labels: Some(labels(&[("app", "web"), (POD_TEMPLATE_HASH_LABEL, &hash)])),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web"), (POD_TEMPLATE_HASH_LABEL, &hash)])),
                match_expressions: None,
            },
            template: Some(t),
            min_ready_seconds: None,
        }),
        status: None,
    };
    let mut foreign = orphan.clone();
    foreign.metadata.name = Some("someone-else".into());
    foreign.metadata.uid = Some("uid-foreign".into());
    foreign.metadata.owner_references = Some(vec![podutil::controller_ref(
        "apps/v1",
        "Deployment",
        &ObjectMeta {
            name: Some("other".into()),
            uid: Some("uid-other".into()),
            ..Default::default()
        },
    )]);
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let plan = reconcile(&d, &[orphan, foreign], &[], now);
    assert_eq!(plan.adopt, vec![format!("web-{hash}")]);
    assert!(plan.create_rs.is_none(), "the adopted set is the new one");
    assert_eq!(
        plan.update_rs_annotations[0].1[REVISION_ANNOTATION],
        "1".to_string()
    );
    assert_eq!(
        find(&plan.status.conditions, condition::PROGRESSING)
            .unwrap()
            .reason
            .as_deref(),
        Some(reason::FOUND_NEW_RS)
    );
}

#[test]
fn a_name_collision_picks_another_hash() {
    let d = rolling(1, IntOrString::Int(1), IntOrString::Int(0));
    let hash = pod_template_hash(&template("web:1"));
    let squatter = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            namespace: Some(NS.into()),
            uid: Some("uid-squatter".into()),
            labels: Some(labels(&[("app", "other")])),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "other")])),
                match_expressions: None,
            },
            ..Default::default()
        }),
        status: None,
    };
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let plan = reconcile(&d, &[squatter], &[], now);
    let rs = plan.create_rs.unwrap();
    assert_ne!(rs.metadata.name, Some(format!("web-{hash}")));
    assert_eq!(plan.status.collision_count, Some(1));
    assert_eq!(
        rs.metadata.name,
        Some(format!(
            "web-{}",
            deployment::pod_template_hash_with_collisions(&template("web:1"), Some(1))
        ))
    );
}

#[test]
fn an_empty_selector_only_observes_the_generation() {
    let mut d = rolling(1, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    d.metadata.generation = Some(4);
    let plan = reconcile(&d, &[], &[], Timestamp::from_second(1_700_000_000).unwrap());
    assert!(plan.create_rs.is_none());
    assert_eq!(plan.status.observed_generation, Some(4));
}

#[test]
fn a_deleting_deployment_only_updates_status() {
    let mut c = Cluster::new(rolling(2, IntOrString::Int(1), IntOrString::Int(0)));
    c.roll_out(&mut |_| {});
    c.d.metadata.deletion_timestamp = Some(Time(c.now));
    c.spec_mut().replicas = Some(5);
    c.set_image("web:2");
    let plan = c.sync_deployment();
    assert!(plan.create_rs.is_none() && plan.scale.is_empty() && plan.delete_rs.is_empty());
}

#[test]
fn annotations_and_min_ready_seconds_follow_the_deployment() {
    let mut c = Cluster::new(rolling(1, IntOrString::Int(1), IntOrString::Int(0)));
    c.d.metadata.annotations = Some(labels(&[
        ("team", "a"),
        ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
    ]));
    c.roll_out(&mut |_| {});
    let rs = c.rs_for_image("web:1").clone();
    let name = rs.metadata.name.clone().unwrap();
    assert_eq!(annotation(&rs, "team").as_deref(), Some("a"));
    assert_eq!(
        annotation(&rs, "kubectl.kubernetes.io/last-applied-configuration"),
        None
    );

    c.spec_mut().min_ready_seconds = Some(5);
    c.d.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("team".into(), "b".into());
    let plan = c.sync_deployment();
    assert_eq!(plan.set_min_ready_seconds, vec![(name.clone(), Some(5))]);
    assert_eq!(plan.update_rs_annotations.len(), 1);
    assert_eq!(plan.update_rs_annotations[0].1["team"], "b");
    assert!(plan.create_rs.is_none(), "not a new template");
}

#[test]
fn losing_a_pod_after_the_rollout_is_not_a_new_rollout() {
    let mut c = Cluster::new(rolling(2, IntOrString::Int(1), IntOrString::Int(0)));
    c.roll_out(&mut |_| {});
    let victim = c.pods[0].metadata.name.clone();
    c.pods.retain(|p| p.metadata.name != victim);
    c.sync_replicasets();
    let plan = c.sync_deployment();
    assert_eq!(plan.status.available_replicas, Some(1));
    assert_eq!(plan.status.unavailable_replicas, Some(1));
    // maxUnavailable 0: availability is below the minimum.
    assert_eq!(available(&c.d).status, "False");
    assert_eq!(
        progressing(&c.d).reason.as_deref(),
        Some(reason::NEW_RS_AVAILABLE)
    );
    assert_eq!(plan.requeue_after, None, "nothing to time out");
    c.roll_out(&mut |_| {});
    assert_eq!(available(&c.d).status, "True");
}
