//! Garbage collector logic: background collection, orphaning, foreground deletion.

use controllers::gc::{self, GcAction, KindInfo, ObjectRef, Propagation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

fn kinds() -> Vec<KindInfo> {
    vec![
        KindInfo::namespaced("apps/v1", "Deployment"),
        KindInfo::namespaced("apps/v1", "ReplicaSet"),
        KindInfo::namespaced("v1", "Pod"),
        KindInfo::namespaced("v1", "ConfigMap"),
        KindInfo::cluster("v1", "Node"),
    ]
}

fn obj(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: ns.map(String::from),
        name: name.into(),
        uid: format!("uid-{name}"),
        ..Default::default()
    }
}

fn owned_by(mut o: ObjectRef, owner: &ObjectRef, block: bool) -> ObjectRef {
    o.owner_refs.push(OwnerReference {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(block),
    });
    o
}

fn deleting(mut o: ObjectRef, finalizer: &str) -> ObjectRef {
    o.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    o.finalizers.push(finalizer.into());
    o
}

fn delete(o: &ObjectRef, propagation: Propagation) -> GcAction {
    GcAction::Delete {
        object: o.key(),
        propagation,
    }
}

#[test]
fn background_collection_of_dangling_dependents() {
    let rs = obj("apps/v1", "ReplicaSet", Some("default"), "web-1");
    let gone = obj("apps/v1", "ReplicaSet", Some("default"), "web-0");
    let live_pod = owned_by(obj("v1", "Pod", Some("default"), "a"), &rs, true);
    let orphan_pod = owned_by(obj("v1", "Pod", Some("default"), "b"), &gone, true);
    // Two owners, one gone: only the reference goes.
    let cm = owned_by(
        owned_by(obj("v1", "ConfigMap", Some("default"), "c"), &rs, false),
        &gone,
        false,
    );
    let objects = vec![rs.clone(), live_pod, orphan_pod.clone(), cm.clone()];
    let actions = gc::plan(&objects, &kinds());
    assert_eq!(
        actions,
        [
            delete(&orphan_pod, Propagation::Background),
            GcAction::RemoveOwnerRefs {
                object: cm.key(),
                owner_uids: vec!["uid-web-0".into()]
            },
        ]
    );
}

#[test]
fn owner_lookup_is_by_kind_namespace_and_uid() {
    // The owner's uid exists, but in another namespace: it is absent for this dependent.
    let rs_elsewhere = obj("apps/v1", "ReplicaSet", Some("other"), "web");
    let pod = owned_by(obj("v1", "Pod", Some("default"), "a"), &rs_elsewhere, true);
    let actions = gc::plan(&[rs_elsewhere.clone(), pod.clone()], &kinds());
    assert_eq!(actions, [delete(&pod, Propagation::Background)]);

    // The uid exists, but on an object of another kind: absent too.
    let mut impostor = obj("v1", "ConfigMap", Some("default"), "web");
    impostor.uid = rs_elsewhere.uid.clone();
    let actions = gc::plan(&[impostor, pod.clone()], &kinds());
    assert_eq!(actions, [delete(&pod, Propagation::Background)]);

    // Another API version of the same group and kind resolves.
    let mut rs_v1beta2 = rs_elsewhere.clone();
    rs_v1beta2.namespace = Some("default".into());
    rs_v1beta2.api_version = "apps/v1beta2".into();
    assert!(gc::plan(&[rs_v1beta2, pod.clone()], &kinds()).is_empty());

    // A cluster-scoped owner resolves from a namespaced dependent.
    let node = obj("v1", "Node", None, "n1");
    let on_node = owned_by(obj("v1", "Pod", Some("default"), "p"), &node, false);
    assert!(gc::plan(&[node.clone(), on_node.clone()], &kinds()).is_empty());
    assert_eq!(
        gc::plan(std::slice::from_ref(&on_node), &kinds()),
        [delete(&on_node, Propagation::Background)]
    );

    // Unwatched owner kinds, and cluster-scoped dependents of namespaced kinds, are left alone.
    let crd_owner = ObjectRef {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        ..obj("v1", "Pod", Some("default"), "w")
    };
    let dep = owned_by(obj("v1", "Pod", Some("default"), "d"), &crd_owner, false);
    assert!(gc::plan(&[dep], &kinds()).is_empty());
    let rs = obj("apps/v1", "ReplicaSet", Some("default"), "r");
    let bad = owned_by(obj("v1", "Node", None, "n2"), &rs, false);
    assert!(gc::plan(&[bad], &kinds()).is_empty());

    // Dependents being deleted are not acted on.
    let mut going = owned_by(obj("v1", "Pod", Some("default"), "g"), &rs_elsewhere, true);
    going.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(gc::plan(&[going], &kinds()).is_empty());
}

#[test]
fn orphan_deletion() {
    let rs = deleting(
        obj("apps/v1", "ReplicaSet", Some("default"), "web"),
        gc::FINALIZER_ORPHAN,
    );
    let a = owned_by(obj("v1", "Pod", Some("default"), "a"), &rs, true);
    let b = owned_by(obj("v1", "Pod", Some("default"), "b"), &rs, true);
    let actions = gc::plan(&[rs.clone(), a.clone(), b.clone()], &kinds());
    assert_eq!(
        actions,
        [
            GcAction::RemoveOwnerRefs {
                object: a.key(),
                owner_uids: vec![rs.uid.clone()]
            },
            GcAction::RemoveOwnerRefs {
                object: b.key(),
                owner_uids: vec![rs.uid.clone()]
            },
            GcAction::RemoveFinalizer {
                object: rs.key(),
                finalizer: "orphan".into()
            },
        ]
    );
    // Once the references are gone, only the finalizer remains to remove.
    let a2 = obj("v1", "Pod", Some("default"), "a");
    let actions = gc::plan(&[rs.clone(), a2], &kinds());
    assert_eq!(
        actions,
        [GcAction::RemoveFinalizer {
            object: rs.key(),
            finalizer: "orphan".into()
        }]
    );
}

#[test]
fn foreground_deletion() {
    let deploy = deleting(
        obj("apps/v1", "Deployment", Some("default"), "web"),
        gc::FINALIZER_FOREGROUND,
    );
    let rs = owned_by(
        obj("apps/v1", "ReplicaSet", Some("default"), "web-1"),
        &deploy,
        true,
    );
    let pod = owned_by(obj("v1", "Pod", Some("default"), "p"), &rs, true);
    // A dependent with another live owner just loses the reference.
    let other = obj("v1", "ConfigMap", Some("default"), "keeper");
    let shared = owned_by(
        owned_by(
            obj("v1", "ConfigMap", Some("default"), "shared"),
            &deploy,
            true,
        ),
        &other,
        false,
    );

    // Round 1: the ReplicaSet has dependents of its own, so it goes in the foreground too;
    // the deployment keeps its finalizer.
    let objects = vec![
        deploy.clone(),
        rs.clone(),
        pod.clone(),
        other.clone(),
        shared.clone(),
    ];
    let actions = gc::plan(&objects, &kinds());
    assert_eq!(
        actions,
        [
            delete(&rs, Propagation::Foreground),
            GcAction::RemoveOwnerRefs {
                object: shared.key(),
                owner_uids: vec![deploy.uid.clone()]
            },
        ]
    );

    // Round 2: the ReplicaSet is deleting its dependents: the pod goes; nobody's finalizer
    // comes off yet.
    let rs_deleting = deleting(rs.clone(), gc::FINALIZER_FOREGROUND);
    let objects = vec![
        deploy.clone(),
        rs_deleting.clone(),
        pod.clone(),
        other.clone(),
    ];
    let actions = gc::plan(&objects, &kinds());
    assert_eq!(actions, [delete(&pod, Propagation::Background)]);

    // Round 3: the pod is being deleted (kubelet still stopping it): it still blocks.
    let mut pod_going = pod.clone();
    pod_going.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    let objects = vec![
        deploy.clone(),
        rs_deleting.clone(),
        pod_going,
        other.clone(),
    ];
    assert!(gc::plan(&objects, &kinds()).is_empty());

    // Round 4: the pod is gone: the ReplicaSet's finalizer comes off.
    let objects = vec![deploy.clone(), rs_deleting.clone(), other.clone()];
    assert_eq!(
        gc::plan(&objects, &kinds()),
        [GcAction::RemoveFinalizer {
            object: rs_deleting.key(),
            finalizer: "foregroundDeletion".into()
        }]
    );

    // Round 5: the ReplicaSet is gone: the Deployment's finalizer comes off.
    let objects = vec![deploy.clone(), other];
    assert_eq!(
        gc::plan(&objects, &kinds()),
        [GcAction::RemoveFinalizer {
            object: deploy.key(),
            finalizer: "foregroundDeletion".into()
        }]
    );

    // Non-blocking dependents are deleted but do not hold the owner.
    let loose = owned_by(obj("v1", "Pod", Some("default"), "loose"), &deploy, false);
    let actions = gc::plan(&[deploy.clone(), loose.clone()], &kinds());
    assert_eq!(
        actions,
        [
            GcAction::RemoveFinalizer {
                object: deploy.key(),
                finalizer: "foregroundDeletion".into()
            },
            delete(&loose, Propagation::Background),
        ]
    );
}

#[test]
fn foreground_cycles_are_unblocked() {
    // a owns b, b owns a; a is deleting in the foreground and so is b's dependent a.
    let a0 = obj("v1", "ConfigMap", Some("default"), "a");
    let b0 = obj("v1", "ConfigMap", Some("default"), "b");
    let a = deleting(owned_by(a0.clone(), &b0, true), gc::FINALIZER_FOREGROUND);
    let b = owned_by(b0, &a0, true);
    let actions = gc::plan(&[a, b.clone()], &kinds());
    assert_eq!(
        actions,
        [
            GcAction::UnblockOwnerRefs { object: b.key() },
            delete(&b, Propagation::Foreground),
        ]
    );
}

#[test]
fn dependents_index() {
    let rs = obj("apps/v1", "ReplicaSet", Some("default"), "web");
    let a = owned_by(obj("v1", "Pod", Some("default"), "a"), &rs, true);
    let deps = gc::dependents(&[rs.clone(), a.clone()], &kinds());
    assert_eq!(deps[&rs.uid], [a.key()]);
}
