//! Pod lifecycle events from two relists: starts, deaths, removals, sandbox changes, and
//! nothing at all when nothing moved.

#![allow(clippy::unwrap_used)]

use kubelet::pleg::{PodLifecycleEvent, pods_with_events, relist_diff};
use kubelet::runtime::{Container, ContainerState, PodRuntime, Relist, Sandbox, SandboxState};

fn sandbox(id: &str, state: SandboxState, ip: Option<&str>) -> Sandbox {
    Sandbox {
        id: id.into(),
        attempt: 0,
        state,
        ip: ip.map(Into::into),
        created_at: 1,
    }
}

fn container(id: &str, state: ContainerState) -> Container {
    Container {
        id: id.into(),
        sandbox_id: "sb".into(),
        name: format!("name-{id}"),
        attempt: 0,
        image: "busybox".into(),
        image_ref: "sha256:1".into(),
        state,
        created_at: 1,
        started_at: 2,
        finished_at: 0,
        exit_code: 0,
        reason: String::new(),
        message: String::new(),
    }
}

fn pod(uid: &str, sandboxes: Vec<Sandbox>, containers: Vec<Container>) -> (String, PodRuntime) {
    (
        uid.to_string(),
        PodRuntime {
            uid: uid.into(),
            name: format!("pod-{uid}"),
            namespace: "ns".into(),
            sandboxes,
            containers,
        },
    )
}

fn ready() -> Sandbox {
    sandbox("sb", SandboxState::Ready, Some("10.0.0.2"))
}

fn started(uid: &str, id: &str) -> PodLifecycleEvent {
    PodLifecycleEvent::ContainerStarted {
        pod_uid: uid.into(),
        container_id: id.into(),
    }
}

fn died(uid: &str, id: &str) -> PodLifecycleEvent {
    PodLifecycleEvent::ContainerDied {
        pod_uid: uid.into(),
        container_id: id.into(),
    }
}

fn removed(uid: &str, id: &str) -> PodLifecycleEvent {
    PodLifecycleEvent::ContainerRemoved {
        pod_uid: uid.into(),
        container_id: id.into(),
    }
}

fn changed(uid: &str, id: &str) -> PodLifecycleEvent {
    PodLifecycleEvent::ContainerChanged {
        pod_uid: uid.into(),
        container_id: id.into(),
    }
}

fn sandbox_changed(uid: &str, id: &str) -> PodLifecycleEvent {
    PodLifecycleEvent::SandboxChanged {
        pod_uid: uid.into(),
        sandbox_id: id.into(),
    }
}

#[test]
fn same_relist_gives_nothing() {
    let list: Relist = [
        pod(
            "a",
            vec![ready()],
            vec![container("c1", ContainerState::Running)],
        ),
        pod(
            "b",
            vec![ready()],
            vec![container("c2", ContainerState::Exited)],
        ),
    ]
    .into();
    assert!(relist_diff(&list, &list.clone()).is_empty());
    assert!(relist_diff(&Relist::new(), &Relist::new()).is_empty());
    assert!(pods_with_events(&[]).is_empty());
}

#[test]
fn container_started_from_absent_or_created() {
    let old: Relist = [pod(
        "a",
        vec![ready()],
        vec![container("c1", ContainerState::Created)],
    )]
    .into();
    let new: Relist = [pod(
        "a",
        vec![ready()],
        vec![
            container("c1", ContainerState::Running),
            container("c2", ContainerState::Running),
        ],
    )]
    .into();
    assert_eq!(
        relist_diff(&old, &new),
        vec![started("a", "c1"), started("a", "c2")]
    );
}

#[test]
fn container_died_from_running_or_created() {
    let old: Relist = [pod(
        "a",
        vec![ready()],
        vec![
            container("c1", ContainerState::Running),
            container("c2", ContainerState::Created),
        ],
    )]
    .into();
    let new: Relist = [pod(
        "a",
        vec![ready()],
        vec![
            container("c1", ContainerState::Exited),
            container("c2", ContainerState::Exited),
        ],
    )]
    .into();
    assert_eq!(
        relist_diff(&old, &new),
        vec![died("a", "c1"), died("a", "c2")]
    );
}

#[test]
fn container_removed() {
    // An exited container that goes away is removed; a running one that goes away died
    // first (so a consumer waiting for its death sees it).
    let old: Relist = [pod(
        "a",
        vec![ready()],
        vec![
            container("c1", ContainerState::Exited),
            container("c2", ContainerState::Running),
        ],
    )]
    .into();
    let new: Relist = [pod("a", vec![ready()], vec![])].into();
    assert_eq!(
        relist_diff(&old, &new),
        vec![removed("a", "c1"), died("a", "c2"), removed("a", "c2")]
    );
}

#[test]
fn other_changes_are_changed() {
    let old: Relist = [pod(
        "a",
        vec![ready()],
        vec![container("c1", ContainerState::Running)],
    )]
    .into();
    let new: Relist = [pod(
        "a",
        vec![ready()],
        vec![
            container("c1", ContainerState::Unknown),
            container("c2", ContainerState::Created),
        ],
    )]
    .into();
    assert_eq!(
        relist_diff(&old, &new),
        vec![changed("a", "c1"), changed("a", "c2")]
    );
}

#[test]
fn sandbox_state_ip_and_presence_changes() {
    let old: Relist = [
        pod("a", vec![ready()], vec![]),
        pod(
            "b",
            vec![sandbox("sb-b", SandboxState::Ready, None)],
            vec![],
        ),
        pod(
            "c",
            vec![sandbox("sb-c", SandboxState::Ready, Some("10.0.0.3"))],
            vec![],
        ),
    ]
    .into();
    let new: Relist = [
        pod(
            "a",
            vec![sandbox("sb", SandboxState::NotReady, Some("10.0.0.2"))],
            vec![],
        ),
        pod(
            "b",
            vec![sandbox("sb-b", SandboxState::Ready, Some("10.0.0.9"))],
            vec![],
        ),
        // Pod c's sandbox was replaced.
        pod(
            "c",
            vec![sandbox("sb-c2", SandboxState::Ready, Some("10.0.0.4"))],
            vec![],
        ),
    ]
    .into();
    assert_eq!(
        relist_diff(&old, &new),
        vec![
            sandbox_changed("a", "sb"),
            sandbox_changed("b", "sb-b"),
            sandbox_changed("c", "sb-c"),
            sandbox_changed("c", "sb-c2"),
        ]
    );
}

#[test]
fn pods_appear_and_vanish_in_uid_order() {
    let old: Relist = [pod(
        "z",
        vec![ready()],
        vec![container("c9", ContainerState::Exited)],
    )]
    .into();
    let new: Relist = [
        pod("m", vec![], vec![container("c5", ContainerState::Running)]),
        pod(
            "b",
            vec![],
            vec![
                container("c7", ContainerState::Running),
                container("c3", ContainerState::Running),
            ],
        ),
    ]
    .into();
    let events = relist_diff(&old, &new);
    assert_eq!(
        events,
        vec![
            started("b", "c3"),
            started("b", "c7"),
            started("m", "c5"),
            sandbox_changed("z", "sb"),
            removed("z", "c9"),
        ]
    );
    assert_eq!(
        pods_with_events(&events).into_iter().collect::<Vec<_>>(),
        vec!["b", "m", "z"]
    );
    assert_eq!(events[0].pod_uid(), "b");
    assert_eq!(events[3].object_id(), "sb");
}
