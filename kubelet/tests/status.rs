//! The API pod status from the pod and the runtime: container states, phases for every
//! restartPolicy, init progress, back-off waiting, last termination, conditions with
//! readiness gates and transition times, IPs, QoS classes and change detection.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kubelet::runtime::{Container, ContainerState, PodRuntime, Sandbox, SandboxState};
use kubelet::status::{pod_status, qos_class, status_changed};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000;
const NS: i64 = 1_000_000_000;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn pod(v: Value) -> Pod {
    let mut v = v;
    if v.get("metadata").is_none() {
        v["metadata"] = json!({"name": "web", "namespace": "ns", "uid": "u1"});
    }
    serde_json::from_value(v).unwrap()
}

fn one_container(policy: &str) -> Pod {
    pod(json!({"spec": {
        "restartPolicy": policy,
        "containers": [{"name": "app", "image": "busybox"}],
    }}))
}

fn sandbox(ip: Option<&str>, state: SandboxState) -> Sandbox {
    Sandbox {
        id: "sb1".into(),
        attempt: 0,
        state,
        ip: ip.map(str::to_string),
        created_at: T0 * NS,
    }
}

/// A runtime container; `created` in seconds after T0 orders the attempts.
fn ctr(name: &str, attempt: u32, state: ContainerState, exit_code: i32, created: i64) -> Container {
    let at = (T0 + created) * NS + 123;
    Container {
        id: format!("{name}-{attempt}"),
        sandbox_id: "sb1".into(),
        name: name.into(),
        attempt,
        image: "busybox".into(),
        image_ref: "sha256:abc".into(),
        state,
        created_at: at,
        started_at: if state == ContainerState::Created {
            0
        } else {
            at + NS
        },
        finished_at: if state == ContainerState::Exited {
            at + 5 * NS
        } else {
            0
        },
        exit_code,
        reason: match (state, exit_code) {
            (ContainerState::Exited, 0) => "Completed".into(),
            (ContainerState::Exited, _) => "Error".into(),
            _ => String::new(),
        },
        message: String::new(),
    }
}

fn runtime(containers: Vec<Container>) -> PodRuntime {
    PodRuntime {
        uid: "u1".into(),
        name: "web".into(),
        namespace: "ns".into(),
        sandboxes: vec![sandbox(Some("10.0.0.5"), SandboxState::Ready)],
        containers,
    }
}

fn no_map<V>() -> BTreeMap<String, V> {
    BTreeMap::new()
}

fn status(p: &Pod, rt: Option<&PodRuntime>) -> PodStatus {
    pod_status(
        p,
        rt,
        &no_map(),
        &no_map(),
        &no_map(),
        "192.168.1.10",
        ts(T0 + 100),
    )
}

fn cs<'a>(s: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
}

fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == t)
        .unwrap()
}

fn waiting_reason(c: &ContainerStatus) -> Option<String> {
    c.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

fn exit_code(c: &ContainerStatus) -> Option<i32> {
    Some(c.state.as_ref()?.terminated.as_ref()?.exit_code)
}

fn last_exit(c: &ContainerStatus) -> Option<i32> {
    Some(c.last_state.as_ref()?.terminated.as_ref()?.exit_code)
}

#[test]
fn nothing_created_is_pending_and_waiting() {
    let p = pod(json!({"spec": {
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }}));
    let s = status(&p, None);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(
        waiting_reason(cs(&s, "init")).as_deref(),
        Some("ContainerCreating")
    );
    let app = cs(&s, "app");
    assert_eq!(waiting_reason(app).as_deref(), Some("PodInitializing"));
    assert_eq!(app.image, "nginx");
    assert_eq!(app.container_id, None);
    assert_eq!(
        (app.ready, app.started, app.restart_count),
        (false, Some(false), 0)
    );
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
    let init = cond(&s, "Initialized");
    assert_eq!(init.status, "False");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [init]")
    );
    assert_eq!(cond(&s, "ContainersReady").status, "False");
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "PodScheduled").status, "True");
    assert_eq!(s.start_time.as_ref().unwrap().0, ts(T0 + 100));
    assert_eq!(s.host_ip.as_deref(), Some("192.168.1.10"));
    assert_eq!(s.host_ips.as_ref().unwrap()[0].ip, "192.168.1.10");
    assert_eq!(s.pod_ip, None);
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));

    // Without init containers a container not yet created is ContainerCreating.
    let s = status(&one_container("Always"), None);
    assert_eq!(
        waiting_reason(cs(&s, "app")).as_deref(),
        Some("ContainerCreating")
    );
}

#[test]
fn running_container_is_ready_and_started() {
    let p = one_container("Always");
    let rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 1)]);
    let s = status(&p, Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let app = cs(&s, "app");
    assert_eq!(app.container_id.as_deref(), Some("containerd://app-0"));
    assert_eq!(app.image_id, "sha256:abc");
    assert_eq!(app.image, "busybox");
    assert!(app.ready);
    assert_eq!(app.started, Some(true));
    let running = app.state.as_ref().unwrap().running.as_ref().unwrap();
    // Whole seconds, as the API stores them.
    assert_eq!(running.started_at.as_ref().unwrap().0, ts(T0 + 2));
    assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.0.0.5");
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(cond(&s, t).status, "True", "{t}");
        assert_eq!(
            cond(&s, t).last_transition_time.as_ref().unwrap().0,
            ts(T0 + 100)
        );
    }
    assert!(s.init_container_statuses.is_none());
}

#[test]
fn probes_gate_started_and_ready() {
    let p = pod(json!({"spec": {"containers": [
        {"name": "a", "image": "busybox"},
        {"name": "b", "image": "busybox"},
    ]}}));
    let rt = runtime(vec![
        ctr("a", 0, ContainerState::Running, 0, 1),
        ctr("b", 0, ContainerState::Running, 0, 1),
    ]);
    let ready = BTreeMap::from([("a".to_string(), false), ("b".to_string(), true)]);
    let s = pod_status(&p, Some(&rt), &ready, &no_map(), &no_map(), "", ts(T0));
    assert!(!cs(&s, "a").ready);
    assert!(cs(&s, "b").ready);
    let cr = cond(&s, "ContainersReady");
    assert_eq!(cr.status, "False");
    assert_eq!(cr.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        cr.message.as_deref(),
        Some("containers with unready status: [a]")
    );
    let r = cond(&s, "Ready");
    assert_eq!(
        (r.status.as_str(), r.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    assert_eq!(s.phase.as_deref(), Some("Running"));

    // A startup probe that has not succeeded: not started, hence not ready.
    let started = BTreeMap::from([("b".to_string(), false)]);
    let s = pod_status(&p, Some(&rt), &ready, &started, &no_map(), "", ts(T0));
    assert_eq!(cs(&s, "b").started, Some(false));
    assert!(!cs(&s, "b").ready);
    assert_eq!(
        cond(&s, "ContainersReady").message.as_deref(),
        Some("containers with unready status: [a b]")
    );
    // Started only counts while running.
    let rt = runtime(vec![ctr("a", 0, ContainerState::Exited, 0, 1)]);
    let s = pod_status(&p, Some(&rt), &no_map(), &no_map(), &no_map(), "", ts(T0));
    assert_eq!(cs(&s, "a").started, Some(false));
    assert!(!cs(&s, "a").ready);
}

#[test]
fn phase_for_every_restart_policy() {
    let p2 = |policy: &str| {
        pod(json!({"spec": {"restartPolicy": policy, "containers": [
            {"name": "a", "image": "busybox"},
            {"name": "b", "image": "busybox"},
        ]}}))
    };
    let cases = [
        // (policy, exit a, exit b, phase)
        ("Always", 0, 0, "Running"),
        ("OnFailure", 0, 0, "Succeeded"),
        ("Never", 0, 0, "Succeeded"),
        ("Always", 0, 1, "Running"),
        ("OnFailure", 0, 1, "Running"),
        ("Never", 0, 1, "Failed"),
    ];
    for (policy, ea, eb, want) in cases {
        let rt = runtime(vec![
            ctr("a", 0, ContainerState::Exited, ea, 1),
            ctr("b", 0, ContainerState::Exited, eb, 1),
        ]);
        let s = status(&p2(policy), Some(&rt));
        assert_eq!(s.phase.as_deref(), Some(want), "{policy} {ea} {eb}");
    }
    // One still running: Running under every policy.
    for policy in ["Always", "OnFailure", "Never"] {
        let rt = runtime(vec![
            ctr("a", 0, ContainerState::Exited, 1, 1),
            ctr("b", 0, ContainerState::Running, 0, 1),
        ]);
        assert_eq!(
            status(&p2(policy), Some(&rt)).phase.as_deref(),
            Some("Running"),
            "{policy}"
        );
    }
    // One created but never started: waiting, so Pending.
    let rt = runtime(vec![
        ctr("a", 0, ContainerState::Running, 0, 1),
        ctr("b", 0, ContainerState::Created, 0, 1),
    ]);
    let s = status(&p2("Always"), Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert!(
        cs(&s, "b")
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .is_some()
    );
}

#[test]
fn terminal_conditions() {
    let rt = runtime(vec![ctr("app", 0, ContainerState::Exited, 0, 1)]);
    let s = status(&one_container("Never"), Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    let cr = cond(&s, "ContainersReady");
    assert_eq!(
        (cr.status.as_str(), cr.reason.as_deref()),
        ("False", Some("PodCompleted"))
    );
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    let init = cond(&s, "Initialized");
    assert_eq!(
        (init.status.as_str(), init.reason.as_deref()),
        ("True", Some("PodCompleted"))
    );
    let t = cs(&s, "app").state.clone().unwrap().terminated.unwrap();
    assert_eq!(t.reason.as_deref(), Some("Completed"));
    assert_eq!(t.container_id.as_deref(), Some("containerd://app-0"));
    assert_eq!(t.started_at.unwrap().0, ts(T0 + 2));
    assert_eq!(t.finished_at.unwrap().0, ts(T0 + 6));

    let rt = runtime(vec![ctr("app", 0, ContainerState::Exited, 2, 1)]);
    let s = status(&one_container("Never"), Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodFailed"));
}

#[test]
fn deleted_pod_stops_for_good_whatever_the_policy() {
    for (code, want) in [(0, "Succeeded"), (143, "Failed")] {
        let mut p = one_container("Always");
        p.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(T0)));
        let rt = runtime(vec![ctr("app", 0, ContainerState::Exited, code, 1)]);
        let waiting = BTreeMap::from([(
            "app".to_string(),
            ("CrashLoopBackOff".to_string(), String::new()),
        )]);
        let s = pod_status(&p, Some(&rt), &no_map(), &no_map(), &waiting, "", ts(T0));
        assert_eq!(s.phase.as_deref(), Some(want));
        // Nothing restarts a deleted pod: no back-off shown.
        assert_eq!(exit_code(cs(&s, "app")), Some(code));
    }
}

#[test]
fn init_containers_progress() {
    let p = pod(json!({"spec": {
        "initContainers": [
            {"name": "i1", "image": "busybox"},
            {"name": "i2", "image": "busybox"},
        ],
        "containers": [{"name": "app", "image": "busybox"}],
    }}));
    // i1 done, i2 running.
    let rt = runtime(vec![
        ctr("i2", 0, ContainerState::Running, 0, 10),
        ctr("i1", 0, ContainerState::Exited, 0, 1),
    ]);
    let s = status(&p, Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let order: Vec<&str> = s
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(order, ["i1", "i2"]);
    assert!(cs(&s, "i1").ready);
    assert!(!cs(&s, "i2").ready);
    assert_eq!(
        cond(&s, "Initialized").message.as_deref(),
        Some("containers with incomplete status: [i2]")
    );
    assert_eq!(
        waiting_reason(cs(&s, "app")).as_deref(),
        Some("PodInitializing")
    );

    // Both done, app running.
    let rt = runtime(vec![
        ctr("app", 0, ContainerState::Running, 0, 20),
        ctr("i2", 0, ContainerState::Exited, 0, 10),
        ctr("i1", 0, ContainerState::Exited, 0, 1),
    ]);
    let s = status(&p, Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert_eq!(cond(&s, "Ready").status, "True");

    // The runtime removed the finished init containers: their statuses stay terminated.
    let mut p2 = p.clone();
    p2.status = Some(s);
    let rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 20)]);
    let s = status(&p2, Some(&rt));
    assert_eq!(exit_code(cs(&s, "i1")), Some(0));
    assert_eq!(exit_code(cs(&s, "i2")), Some(0));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Initialized").status, "True");
}

#[test]
fn failed_init_container() {
    let p = |policy: &str| {
        pod(json!({"spec": {
            "restartPolicy": policy,
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "busybox"}],
        }}))
    };
    let rt = runtime(vec![ctr("init", 0, ContainerState::Exited, 3, 1)]);
    let s = status(&p("Never"), Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Failed"));

    // Restarted under OnFailure (and Always): Pending, in back-off.
    let waiting = BTreeMap::from([(
        "init".to_string(),
        (
            "CrashLoopBackOff".to_string(),
            "back-off 10s restarting failed container=init".to_string(),
        ),
    )]);
    for policy in ["OnFailure", "Always"] {
        let s = pod_status(
            &p(policy),
            Some(&rt),
            &no_map(),
            &no_map(),
            &waiting,
            "",
            ts(T0),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"), "{policy}");
        let init = cs(&s, "init");
        assert_eq!(waiting_reason(init).as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(last_exit(init), Some(3));
        assert_eq!(cond(&s, "Initialized").status, "False");
    }
    // Never: no back-off shown, the failure stays.
    let s = pod_status(
        &p("Never"),
        Some(&rt),
        &no_map(),
        &no_map(),
        &waiting,
        "",
        ts(T0),
    );
    assert_eq!(exit_code(cs(&s, "init")), Some(3));
}

#[test]
fn crash_loop_back_off_and_last_termination() {
    let p = one_container("Always");
    let rt = runtime(vec![
        ctr("app", 1, ContainerState::Exited, 1, 10),
        ctr("app", 0, ContainerState::Exited, 1, 1),
    ]);
    let waiting = BTreeMap::from([(
        "app".to_string(),
        (
            "CrashLoopBackOff".to_string(),
            "back-off 20s restarting failed container=app pod=web_ns(u1)".to_string(),
        ),
    )]);
    let s = pod_status(&p, Some(&rt), &no_map(), &no_map(), &waiting, "", ts(T0));
    let app = cs(&s, "app");
    let w = app.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(w.message.as_deref().unwrap().starts_with("back-off 20s"));
    let last = app
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(last.container_id.as_deref(), Some("containerd://app-1"));
    assert_eq!(last.exit_code, 1);
    assert_eq!(app.restart_count, 1);
    assert_eq!(app.container_id.as_deref(), Some("containerd://app-1"));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert!(!app.ready);

    // Restarted and running: the previous attempt is the last termination.
    let rt = runtime(vec![
        ctr("app", 2, ContainerState::Running, 0, 20),
        ctr("app", 1, ContainerState::Exited, 137, 10),
        ctr("app", 0, ContainerState::Exited, 1, 1),
    ]);
    let s = pod_status(&p, Some(&rt), &no_map(), &no_map(), &waiting, "", ts(T0));
    let app = cs(&s, "app");
    assert!(app.state.as_ref().unwrap().running.is_some());
    assert_eq!(app.restart_count, 2);
    assert_eq!(last_exit(app), Some(137));
    assert_eq!(
        app.last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .container_id
            .as_deref(),
        Some("containerd://app-1")
    );

    // The runtime dropped the old attempt: the previous status still knows it.
    let mut p2 = p.clone();
    p2.status = Some(s);
    let rt = runtime(vec![ctr("app", 2, ContainerState::Running, 0, 20)]);
    let s = status(&p2, Some(&rt));
    assert_eq!(last_exit(cs(&s, "app")), Some(137));
}

#[test]
fn waiting_reasons_apply_only_to_containers_due_to_start() {
    let waiting = BTreeMap::from([(
        "app".to_string(),
        ("ErrImagePull".to_string(), "pull failed".to_string()),
    )]);
    // Never created: the pull error shows.
    let s = pod_status(
        &one_container("Always"),
        None,
        &no_map(),
        &no_map(),
        &waiting,
        "",
        ts(T0),
    );
    assert_eq!(
        waiting_reason(cs(&s, "app")).as_deref(),
        Some("ErrImagePull")
    );
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    // Running: ignored.
    let rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 1)]);
    let s = pod_status(
        &one_container("Always"),
        Some(&rt),
        &no_map(),
        &no_map(),
        &waiting,
        "",
        ts(T0),
    );
    assert!(cs(&s, "app").state.as_ref().unwrap().running.is_some());
    // Succeeded under OnFailure: not restarted, ignored.
    let rt = runtime(vec![ctr("app", 0, ContainerState::Exited, 0, 1)]);
    let s = pod_status(
        &one_container("OnFailure"),
        Some(&rt),
        &no_map(),
        &no_map(),
        &waiting,
        "",
        ts(T0),
    );
    assert_eq!(exit_code(cs(&s, "app")), Some(0));
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
}

#[test]
fn vanished_running_container_counts_as_stopped() {
    let p = one_container("Always");
    let rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 1)]);
    let mut p2 = p.clone();
    p2.status = Some(status(&p, Some(&rt)));
    let rt = runtime(vec![]);
    let s = status(&p2, Some(&rt));
    let app = cs(&s, "app");
    assert_eq!(waiting_reason(app).as_deref(), Some("ContainerCreating"));
    let last = app
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (137, Some("ContainerStatusUnknown"))
    );
    assert_eq!(app.restart_count, 1);
    assert_eq!(s.phase.as_deref(), Some("Running"));
}

#[test]
fn readiness_gates() {
    let mut p = pod(json!({"spec": {
        "readinessGates": [{"conditionType": "example.com/lb"}],
        "containers": [{"name": "app", "image": "busybox"}],
    }}));
    let rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 1)]);
    let s = status(&p, Some(&rt));
    let r = cond(&s, "Ready");
    assert_eq!(r.status, "False");
    assert_eq!(r.reason.as_deref(), Some("ReadinessGatesNotReady"));
    assert_eq!(
        r.message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );
    assert_eq!(cond(&s, "ContainersReady").status, "True");

    let gate = |status: &str| PodCondition {
        type_: "example.com/lb".into(),
        status: status.into(),
        ..Default::default()
    };
    p.status = Some(PodStatus {
        conditions: Some(vec![gate("False")]),
        ..Default::default()
    });
    let s = status(&p, Some(&rt));
    assert_eq!(
        cond(&s, "Ready").message.as_deref(),
        Some("the status of pod readiness gate \"example.com/lb\" is not \"True\", but False")
    );
    // The gate condition is kept as it is.
    assert_eq!(cond(&s, "example.com/lb").status, "False");

    p.status = Some(PodStatus {
        conditions: Some(vec![gate("True")]),
        ..Default::default()
    });
    let s = status(&p, Some(&rt));
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(cond(&s, "example.com/lb").status, "True");
}

#[test]
fn transition_times_and_change_detection() {
    let p = one_container("Always");
    let rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 1)]);
    let first = pod_status(
        &p,
        Some(&rt),
        &no_map(),
        &no_map(),
        &no_map(),
        "h",
        ts(T0 + 10),
    );
    // Through the API and back.
    let first: PodStatus = serde_json::from_value(serde_json::to_value(&first).unwrap()).unwrap();
    let mut p1 = p.clone();
    p1.status = Some(first.clone());

    // Later, nothing changed: same transition times, same start time, no patch.
    let second = pod_status(
        &p1,
        Some(&rt),
        &no_map(),
        &no_map(),
        &no_map(),
        "h",
        ts(T0 + 50),
    );
    assert_eq!(
        cond(&second, "Ready")
            .last_transition_time
            .as_ref()
            .unwrap()
            .0,
        ts(T0 + 10)
    );
    assert_eq!(second.start_time.as_ref().unwrap().0, ts(T0 + 10));
    assert!(!status_changed(&first, &second));

    // Readiness drops: Ready moves at the new time, the status changed.
    let unready = BTreeMap::from([("app".to_string(), false)]);
    let third = pod_status(
        &p1,
        Some(&rt),
        &unready,
        &no_map(),
        &no_map(),
        "h",
        ts(T0 + 60),
    );
    assert_eq!(
        cond(&third, "Ready")
            .last_transition_time
            .as_ref()
            .unwrap()
            .0,
        ts(T0 + 60)
    );
    assert_eq!(
        cond(&third, "PodScheduled")
            .last_transition_time
            .as_ref()
            .unwrap()
            .0,
        ts(T0 + 10)
    );
    assert!(status_changed(&first, &third));

    // Only condition timestamps differ: not a change.
    let mut touched = first.clone();
    for c in touched.conditions.iter_mut().flatten() {
        c.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
            T0 + 999
        )));
        c.last_probe_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
            T0 + 999
        )));
    }
    assert!(!status_changed(&first, &touched));
    // Sub-second differences and empty-vs-absent fields are not changes either.
    let mut fine = first.clone();
    fine.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_nanosecond(i128::from(T0 + 10) * 1_000_000_000 + 5).unwrap(),
    ));
    fine.message = Some(String::new());
    fine.init_container_statuses = Some(vec![]);
    assert!(!status_changed(&first, &fine));
    // A restart is.
    let mut restarted = first.clone();
    restarted.container_statuses.as_mut().unwrap()[0].restart_count = 1;
    assert!(status_changed(&first, &restarted));
}

#[test]
fn terminal_phase_is_kept() {
    let p = one_container("Never");
    let rt = runtime(vec![ctr("app", 0, ContainerState::Exited, 0, 1)]);
    let mut p2 = p.clone();
    p2.status = Some(status(&p, Some(&rt)));
    p2.status.as_mut().unwrap().reason = Some("Done".into());
    // The runtime forgot everything: the pod stays Succeeded, the container terminated.
    let s = status(&p2, None);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(s.reason.as_deref(), Some("Done"));
    assert_eq!(exit_code(cs(&s, "app")), Some(0));
    // The pod keeps its address after the sandbox is gone.
    assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.5"));
}

#[test]
fn sandbox_and_host_network() {
    let p = one_container("Always");
    let mut rt = runtime(vec![]);
    rt.sandboxes = vec![sandbox(None, SandboxState::NotReady)];
    let s = status(&p, Some(&rt));
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
    assert_eq!(s.pod_ip, None);

    let p = pod(json!({"spec": {
        "hostNetwork": true,
        "containers": [{"name": "app", "image": "busybox"}],
    }}));
    let mut rt = runtime(vec![ctr("app", 0, ContainerState::Running, 0, 1)]);
    rt.sandboxes = vec![sandbox(None, SandboxState::Ready)];
    let s = status(&p, Some(&rt));
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "True");
    assert_eq!(s.pod_ip.as_deref(), Some("192.168.1.10"));
}

#[test]
fn sidecars() {
    let p = pod(json!({"spec": {
        "initContainers": [
            {"name": "init", "image": "busybox"},
            {"name": "proxy", "image": "busybox", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "app", "image": "busybox"}],
    }}));
    // The sidecar runs but its startup probe has not passed: still initializing.
    let rt = runtime(vec![
        ctr("proxy", 0, ContainerState::Running, 0, 10),
        ctr("init", 0, ContainerState::Exited, 0, 1),
    ]);
    let started = BTreeMap::from([("proxy".to_string(), false)]);
    let s = pod_status(&p, Some(&rt), &no_map(), &started, &no_map(), "", ts(T0));
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(
        cond(&s, "Initialized").message.as_deref(),
        Some("containers with incomplete status: [proxy]")
    );
    // Started: initialized; with the app running the pod runs, the sidecar counts for
    // readiness.
    let rt = runtime(vec![
        ctr("app", 0, ContainerState::Running, 0, 20),
        ctr("proxy", 0, ContainerState::Running, 0, 10),
        ctr("init", 0, ContainerState::Exited, 0, 1),
    ]);
    let s = status(&p, Some(&rt));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert!(cs(&s, "proxy").ready);
    let unready = BTreeMap::from([("proxy".to_string(), false)]);
    let s = pod_status(&p, Some(&rt), &unready, &no_map(), &no_map(), "", ts(T0));
    assert_eq!(
        cond(&s, "ContainersReady").message.as_deref(),
        Some("containers with unready status: [proxy]")
    );
}

fn spec_with(containers: Value) -> k8s_openapi::api::core::v1::PodSpec {
    serde_json::from_value(json!({ "containers": containers })).unwrap()
}

#[test]
fn qos_classes() {
    let c = |res: Value| json!({"name": "c", "image": "i", "resources": res});
    assert_eq!(qos_class(&spec_with(json!([c(json!({}))]))), "BestEffort");
    assert_eq!(
        qos_class(&spec_with(json!([c(json!({"requests": {"cpu": "0"}}))]))),
        "BestEffort"
    );
    assert_eq!(
        qos_class(&spec_with(json!([c(json!({"requests": {"cpu": "100m"}}))]))),
        "Burstable"
    );
    let full = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}});
    assert_eq!(
        qos_class(&spec_with(json!([c(full.clone())]))),
        "Guaranteed"
    );
    // Limits alone: requests default to them.
    let limits_only = json!({"limits": {"cpu": "500m", "memory": "128Mi"}});
    assert_eq!(
        qos_class(&spec_with(json!([c(limits_only.clone())]))),
        "Guaranteed"
    );
    // Requests below limits.
    assert_eq!(
        qos_class(&spec_with(json!([c(
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
        )]))),
        "Burstable"
    );
    // Only cpu limited.
    assert_eq!(
        qos_class(&spec_with(json!([c(json!({"limits": {"cpu": "1"}}))]))),
        "Burstable"
    );
    // One container without limits spoils Guaranteed.
    assert_eq!(
        qos_class(&spec_with(
            json!([c(full.clone()), {"name": "d", "image": "i"}])
        )),
        "Burstable"
    );
    // Init containers count too.
    let mut spec = spec_with(json!([c(full.clone())]));
    spec.init_containers = Some(vec![
        serde_json::from_value(json!({"name": "init", "image": "i"})).unwrap(),
    ]);
    assert_eq!(qos_class(&spec), "Burstable");
    // Other resources do not matter.
    assert_eq!(
        qos_class(&spec_with(json!([c(
            json!({"limits": {"ephemeral-storage": "1Gi"}})
        )]))),
        "BestEffort"
    );

    // The status reports it, and keeps one already set.
    let p = pod(json!({"spec": {"containers": [c(limits_only)]}}));
    assert_eq!(status(&p, None).qos_class.as_deref(), Some("Guaranteed"));
    let mut p2 = p.clone();
    p2.status = Some(PodStatus {
        qos_class: Some("Burstable".into()),
        ..Default::default()
    });
    assert_eq!(status(&p2, None).qos_class.as_deref(), Some("Burstable"));
}
