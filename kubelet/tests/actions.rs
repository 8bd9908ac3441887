//! What a pod sync must do: sandbox (re)creation, init containers in order, restart
//! policies, CrashLoopBackOff, spec changes and completed or failed pods.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kubelet::actions::{
    Backoff, BackoffKey, CONTAINER_CREATING, CRASH_LOOP_BACK_OFF, KILL_NOT_IN_SPEC,
    KILL_SPEC_CHANGED, KILL_UNKNOWN_STATE, POD_INITIALIZING, PodActions, compute,
};
use kubelet::runtime::{Container, ContainerState, PodRuntime, Sandbox, SandboxState};
use serde_json::json;

const S: i64 = 1_000_000_000;
const NOW: i64 = 100_000 * S;
const UID: &str = "uid-1";

fn pod_from(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": UID},
        "spec": spec,
    }))
    .unwrap()
}

/// Two init containers and two regular ones.
fn init_pod() -> Pod {
    pod_from(json!({
        "initContainers": [
            {"name": "i1", "image": "busybox"},
            {"name": "i2", "image": "busybox"},
        ],
        "containers": [
            {"name": "a", "image": "nginx:1"},
            {"name": "b", "image": "redis"},
        ],
    }))
}

fn simple_pod(policy: &str) -> Pod {
    pod_from(json!({
        "restartPolicy": policy,
        "containers": [{"name": "a", "image": "nginx:1"}],
    }))
}

#[derive(Default)]
struct Rt(PodRuntime);

impl Rt {
    fn new() -> Self {
        Self(PodRuntime {
            uid: UID.into(),
            name: "web".into(),
            namespace: "ns".into(),
            ..Default::default()
        })
    }

    fn sandbox(mut self, id: &str, attempt: u32, state: SandboxState, ip: Option<&str>) -> Self {
        self.0.sandboxes.insert(
            0,
            Sandbox {
                id: id.into(),
                attempt,
                state,
                ip: ip.map(Into::into),
                created_at: i64::from(attempt) + 1,
            },
        );
        self
    }

    fn ready(self, id: &str, attempt: u32) -> Self {
        self.sandbox(id, attempt, SandboxState::Ready, Some("10.0.0.5"))
    }

    fn running(self, sb: &str, name: &str, attempt: u32, image: &str) -> Self {
        self.add(sb, name, attempt, image, ContainerState::Running, 0, 0)
    }

    /// An instance that ran 1 s and exited `exit_code` at `finished_at`.
    fn exited(self, sb: &str, name: &str, attempt: u32, exit_code: i32, finished_at: i64) -> Self {
        self.add(
            sb,
            name,
            attempt,
            "",
            ContainerState::Exited,
            exit_code,
            finished_at,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        mut self,
        sb: &str,
        name: &str,
        attempt: u32,
        image: &str,
        state: ContainerState,
        exit_code: i32,
        finished_at: i64,
    ) -> Self {
        self.0.containers.insert(
            0,
            Container {
                id: format!("{sb}-{name}-{attempt}"),
                sandbox_id: sb.into(),
                name: name.into(),
                attempt,
                image: image.into(),
                image_ref: "sha256:0".into(),
                state,
                created_at: finished_at.max(1) - 2 * S,
                started_at: finished_at.max(1) - S,
                finished_at,
                exit_code,
                reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
                message: String::new(),
            },
        );
        self
    }
}

fn run(pod: &Pod, rt: &Rt) -> PodActions {
    compute(pod, Some(&rt.0), &Backoff::new(), NOW)
}

fn names(start: &[(String, u32)]) -> Vec<(&str, u32)> {
    start.iter().map(|(n, a)| (n.as_str(), *a)).collect()
}

#[test]
fn fresh_pod_goes_through_sandbox_init_and_containers() {
    let pod = init_pod();
    let a = compute(&pod, None, &Backoff::new(), NOW);
    assert_eq!(a.create_sandbox, Some(0));
    assert!(!a.kill_pod);
    assert_eq!(a.start_init.as_deref(), Some("i1"));
    assert_eq!(a.init_attempt, 0);
    assert!(a.start.is_empty());
    for name in ["i1", "i2", "a", "b"] {
        assert_eq!(a.waiting_reason[name], POD_INITIALIZING);
    }

    // The sandbox is up but nothing ran yet.
    let rt = Rt::new().ready("sb0", 0);
    let a = run(&pod, &rt);
    assert_eq!(a.create_sandbox, None);
    assert_eq!(a.sandbox_id.as_deref(), Some("sb0"));
    assert_eq!(a.start_init.as_deref(), Some("i1"));

    // i1 runs: wait for it.
    let a = run(
        &pod,
        &Rt::new().ready("sb0", 0).running("sb0", "i1", 0, "busybox"),
    );
    assert!(a.is_noop(), "{a:?}");
    assert_eq!(a.waiting_reason["a"], POD_INITIALIZING);

    // i1 done: i2.
    let rt = Rt::new().ready("sb0", 0).exited("sb0", "i1", 0, 0, NOW - S);
    let a = run(&pod, &rt);
    assert_eq!(a.start_init.as_deref(), Some("i2"));
    assert_eq!(a.init_attempt, 0);
    assert!(a.start.is_empty());

    // Both done: the regular containers.
    let rt = rt.exited("sb0", "i2", 0, 0, NOW - S);
    let a = run(&pod, &rt);
    assert_eq!(a.start_init, None);
    assert_eq!(names(&a.start), vec![("a", 0), ("b", 0)]);
    assert!(a.kill.is_empty() && !a.kill_pod);

    // All running: nothing to do, even once the completed init containers are gone.
    let rt = rt.running("sb0", "a", 0, "nginx:1").running(
        "sb0",
        "b",
        0,
        "docker.io/library/redis:latest",
    );
    assert!(run(&pod, &rt).is_noop());
    let mut pruned = rt;
    pruned.0.containers.retain(|c| !c.name.starts_with('i'));
    let a = run(&pod, &pruned);
    assert!(a.is_noop(), "{a:?}");
}

#[test]
fn pod_without_init_containers_starts_everything_with_the_sandbox() {
    let pod = simple_pod("Always");
    let a = compute(&pod, None, &Backoff::new(), NOW);
    assert_eq!(a.create_sandbox, Some(0));
    assert_eq!(names(&a.start), vec![("a", 0)]);
    assert_eq!(a.waiting_reason["a"], CONTAINER_CREATING);
}

#[test]
fn restart_policies() {
    // (policy, exit code, restarted)
    let cases = [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 1, true),
        ("Never", 0, false),
        ("Never", 1, false),
    ];
    for (policy, code, restarted) in cases {
        let pod = simple_pod(policy);
        // Exited long ago: no back-off in the way.
        let rt = Rt::new()
            .ready("sb0", 0)
            .exited("sb0", "a", 3, code, NOW - 3600 * S);
        let a = run(&pod, &rt);
        if restarted {
            assert_eq!(names(&a.start), vec![("a", 4)], "{policy} {code}");
            assert!(!a.kill_pod);
        } else {
            // Nothing runs any more: the pod (its sandbox) is stopped.
            assert!(a.start.is_empty(), "{policy} {code}");
            assert!(a.kill_pod, "{policy} {code}");
        }
        assert!(a.backoff.is_empty());
    }
}

#[test]
fn backoff_grows_to_the_cap_and_resets_after_ten_minutes() {
    let mut b = Backoff::new();
    let key = BackoffKey::new(UID, "a");
    assert_eq!(b.next_delay(&key), Duration::from_secs(10));
    assert_eq!(b.remaining(&key, NOW), None);
    let mut t = NOW;
    for want in [10, 20, 40, 80, 160, 300, 300] {
        t += 1000 * S;
        b.record_exit(&key, Duration::from_secs(1), t);
        assert_eq!(b.next_delay(&key), Duration::from_secs(want));
        assert_eq!(
            b.remaining(&key, t + 3 * S),
            Some(Duration::from_secs(want - 3))
        );
        assert_eq!(b.remaining(&key, t + (want as i64) * S), None);
        // The same exit recorded again changes nothing.
        b.record_exit(&key, Duration::from_secs(1), t);
        assert_eq!(b.next_delay(&key), Duration::from_secs(want));
    }
    // A run of 10 minutes resets.
    b.record_exit(&key, Duration::from_secs(600), t + 700 * S);
    assert_eq!(b.next_delay(&key), Duration::from_secs(10));
    b.record_exit(&key, Duration::from_secs(599), t + 1400 * S);
    assert_eq!(b.next_delay(&key), Duration::from_secs(20));
    // Other containers are independent; forgetting the pod drops them all.
    let other = BackoffKey::new(UID, "b");
    assert_eq!(b.next_delay(&other), Duration::from_secs(10));
    b.forget_pod(UID);
    assert!(b.is_empty());
}

#[test]
fn crash_loop_back_off_holds_restarts() {
    let pod = simple_pod("Always");
    let finished = NOW - 5 * S;
    let rt = Rt::new()
        .ready("sb0", 0)
        .exited("sb0", "a", 0, 1, NOW - 100 * S)
        .exited("sb0", "a", 1, 1, finished);
    let mut b = Backoff::new();
    b.record_exits(UID, &rt.0);
    assert_eq!(
        b.next_delay(&BackoffKey::new(UID, "a")),
        Duration::from_secs(20)
    );
    let a = compute(&pod, Some(&rt.0), &b, NOW);
    assert!(a.start.is_empty());
    assert!(!a.kill_pod, "a container waiting in back-off keeps the pod");
    assert_eq!(a.backoff, vec![("a".to_string(), Duration::from_secs(15))]);
    assert_eq!(a.waiting_reason["a"], CRASH_LOOP_BACK_OFF);
    assert_eq!(
        a.waiting_message["a"],
        "back-off 20s restarting failed container=a pod=web_ns(uid-1)"
    );
    // Once the wait is over the container restarts with the next attempt.
    let a = compute(&pod, Some(&rt.0), &b, finished + 20 * S);
    assert_eq!(names(&a.start), vec![("a", 2)]);
    assert!(a.backoff.is_empty() && a.waiting_reason.is_empty());

    // An exit the caller has not recorded yet waits as if it were.
    let a = compute(&pod, Some(&rt.0), &Backoff::new(), NOW);
    assert_eq!(a.backoff, vec![("a".to_string(), Duration::from_secs(5))]);
    assert_eq!(
        a.waiting_message["a"],
        "back-off 10s restarting failed container=a pod=web_ns(uid-1)"
    );
}

#[test]
fn lost_sandbox_kills_and_recreates() {
    let pod = simple_pod("Always");
    let rt = Rt::new()
        .sandbox("sb2", 2, SandboxState::NotReady, Some("10.0.0.5"))
        .running("sb2", "a", 4, "nginx:1");
    let a = run(&pod, &rt);
    assert!(a.kill_pod);
    assert_eq!(a.create_sandbox, Some(3));
    assert_eq!(names(&a.start), vec![("a", 5)]);

    // A ready sandbox without an IP is as good as lost, unless the pod uses the host
    // network.
    let rt = Rt::new()
        .sandbox("sb0", 0, SandboxState::Ready, None)
        .running("sb0", "a", 0, "nginx:1");
    let a = run(&pod, &rt);
    assert_eq!((a.kill_pod, a.create_sandbox), (true, Some(1)));
    let host = pod_from(json!({
        "hostNetwork": true,
        "containers": [{"name": "a", "image": "nginx:1"}],
    }));
    assert!(run(&host, &rt).is_noop());

    // Two ready sandboxes: start over.
    let rt = Rt::new()
        .ready("sb0", 0)
        .ready("sb1", 1)
        .running("sb1", "a", 0, "nginx:1");
    assert_eq!(run(&pod, &rt).create_sandbox, Some(2));
}

#[test]
fn new_sandbox_runs_init_containers_again() {
    let pod = init_pod();
    let old = Rt::new()
        .sandbox("sb0", 0, SandboxState::NotReady, Some("10.0.0.5"))
        .exited("sb0", "i1", 0, 0, NOW - 50 * S)
        .exited("sb0", "i2", 0, 0, NOW - 40 * S)
        .exited("sb0", "a", 0, 137, NOW - S)
        .exited("sb0", "b", 0, 137, NOW - S);
    let a = run(&pod, &old);
    assert!(!a.kill_pod, "nothing runs any more");
    assert_eq!(a.create_sandbox, Some(1));
    assert_eq!(a.start_init.as_deref(), Some("i1"));
    assert_eq!(a.init_attempt, 1);

    let rt = old.ready("sb1", 1);
    let a = run(&pod, &rt);
    assert_eq!(a.start_init.as_deref(), Some("i1"));
    assert_eq!(a.init_attempt, 1);
    let rt = rt
        .exited("sb1", "i1", 1, 0, NOW)
        .exited("sb1", "i2", 1, 0, NOW);
    // The regular containers restart without back-off: they were stopped with the old
    // sandbox.
    let a = run(&pod, &rt);
    assert_eq!(names(&a.start), vec![("a", 1), ("b", 1)]);
}

#[test]
fn image_change_kills_and_restarts() {
    let pod = simple_pod("Never");
    let rt = Rt::new().ready("sb0", 0).running("sb0", "a", 2, "nginx:0");
    let a = run(&pod, &rt);
    assert_eq!(
        a.kill,
        vec![("sb0-a-2".to_string(), KILL_SPEC_CHANGED.to_string())]
    );
    assert_eq!(names(&a.start), vec![("a", 3)]);
    assert!(!a.kill_pod);
    // The same image spelled in full is no change.
    let rt = Rt::new()
        .ready("sb0", 0)
        .running("sb0", "a", 2, "docker.io/library/nginx:1");
    assert!(run(&pod, &rt).is_noop());
}

#[test]
fn containers_not_in_the_spec_are_killed() {
    let pod = simple_pod("Always");
    let rt = Rt::new()
        .ready("sb0", 0)
        .running("sb0", "a", 0, "nginx:1")
        .running("sb0", "gone", 0, "busybox")
        .exited("sb0", "older", 0, 0, NOW - S);
    let a = run(&pod, &rt);
    assert_eq!(
        a.kill,
        vec![("sb0-gone-0".to_string(), KILL_NOT_IN_SPEC.to_string())]
    );
    assert!(a.start.is_empty() && !a.kill_pod);
}

#[test]
fn unknown_container_is_killed_then_started() {
    let pod = simple_pod("Never");
    let rt = Rt::new()
        .ready("sb0", 0)
        .add("sb0", "a", 0, "nginx:1", ContainerState::Unknown, 0, 0);
    let a = run(&pod, &rt);
    assert_eq!(
        a.kill,
        vec![("sb0-a-0".to_string(), KILL_UNKNOWN_STATE.to_string())]
    );
    assert_eq!(names(&a.start), vec![("a", 1)]);
}

#[test]
fn completed_pods_get_nothing() {
    // Never: done once its sandbox is stopped.
    let pod = simple_pod("Never");
    let rt = Rt::new()
        .sandbox("sb0", 0, SandboxState::NotReady, Some("10.0.0.5"))
        .exited("sb0", "a", 0, 1, NOW - S);
    let a = run(&pod, &rt);
    assert!(a.is_noop(), "{a:?}");
    assert_eq!(a, PodActions::default());

    // While the sandbox still runs, the only thing left is to stop it.
    let rt = Rt::new().ready("sb0", 0).exited("sb0", "a", 0, 0, NOW - S);
    let a = run(&pod, &rt);
    assert!(a.kill_pod && a.start.is_empty() && a.create_sandbox.is_none());

    // OnFailure with every container succeeded.
    let pod = simple_pod("OnFailure");
    let rt = Rt::new()
        .sandbox("sb0", 0, SandboxState::NotReady, Some("10.0.0.5"))
        .exited("sb0", "a", 0, 0, NOW - S);
    assert_eq!(run(&pod, &rt), PodActions::default());
    // ... but a failed one gets a new sandbox to restart in.
    let rt = Rt::new()
        .sandbox("sb0", 0, SandboxState::NotReady, Some("10.0.0.5"))
        .exited("sb0", "a", 0, 2, NOW - S);
    let a = run(&pod, &rt);
    assert_eq!(a.create_sandbox, Some(1));
    assert_eq!(names(&a.start), vec![("a", 1)]);
}

#[test]
fn deleted_or_terminal_pods_start_nothing() {
    let mut pod = simple_pod("Always");
    let rt = Rt::new()
        .ready("sb0", 0)
        .exited("sb0", "a", 0, 1, NOW - 3600 * S);
    pod.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap());
    let a = run(&pod, &rt);
    assert!(a.kill_pod && a.start.is_empty() && a.create_sandbox.is_none());
    assert!(compute(&pod, None, &Backoff::new(), NOW).is_noop());

    let mut pod = simple_pod("Always");
    pod.status = Some(serde_json::from_value(json!({"phase": "Failed"})).unwrap());
    let a = run(&pod, &rt);
    assert!(a.kill_pod && a.start.is_empty());
}

#[test]
fn failed_init_container() {
    // Never: the pod has failed.
    let mut pod = init_pod();
    pod.spec.as_mut().unwrap().restart_policy = Some("Never".into());
    let rt = Rt::new().ready("sb0", 0).exited("sb0", "i1", 0, 1, NOW - S);
    let a = run(&pod, &rt);
    assert!(a.pod_failed);
    assert!(a.kill_pod);
    assert!(a.start_init.is_none() && a.start.is_empty());

    // OOMKilled counts as a failure even with exit code 0.
    let mut rt = Rt::new().ready("sb0", 0).exited("sb0", "i1", 0, 0, NOW - S);
    rt.0.containers[0].reason = "OOMKilled".into();
    assert!(run(&pod, &rt).pod_failed);

    // Always / OnFailure: restarted, after its back-off.
    let pod = init_pod();
    let rt = Rt::new().ready("sb0", 0).exited("sb0", "i1", 0, 1, NOW - S);
    let a = run(&pod, &rt);
    assert!(!a.pod_failed && !a.kill_pod);
    assert_eq!(a.start_init, None);
    assert_eq!(a.backoff, vec![("i1".to_string(), Duration::from_secs(9))]);
    assert_eq!(a.waiting_reason["i1"], CRASH_LOOP_BACK_OFF);
    assert_eq!(a.waiting_reason["a"], POD_INITIALIZING);
    let a = compute(&pod, Some(&rt.0), &Backoff::new(), NOW + 9 * S);
    assert_eq!(a.start_init.as_deref(), Some("i1"));
    assert_eq!(a.init_attempt, 1);
}

#[test]
fn sidecars_start_in_order_and_keep_running() {
    let pod = pod_from(json!({
        "restartPolicy": "Never",
        "initContainers": [
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
            {"name": "setup", "image": "busybox"},
        ],
        "containers": [{"name": "a", "image": "nginx:1"}],
    }));
    let rt = Rt::new().ready("sb0", 0);
    assert_eq!(run(&pod, &rt).start_init.as_deref(), Some("proxy"));
    // The sidecar is running: the next init container starts alongside.
    let rt = rt.running("sb0", "proxy", 0, "envoy");
    assert_eq!(run(&pod, &rt).start_init.as_deref(), Some("setup"));
    let rt = rt.exited("sb0", "setup", 0, 0, NOW - S);
    let a = run(&pod, &rt);
    assert_eq!(a.start_init, None);
    assert_eq!(names(&a.start), vec![("a", 0)]);

    // The sidecar exits while the app runs: it is restarted even under Never.
    let rt = rt.running("sb0", "a", 0, "nginx:1");
    let mut exited = rt.0.clone();
    let proxy = exited
        .containers
        .iter_mut()
        .find(|c| c.name == "proxy")
        .unwrap();
    proxy.state = ContainerState::Exited;
    proxy.finished_at = NOW - 3600 * S;
    let a = compute(&pod, Some(&exited), &Backoff::new(), NOW);
    assert_eq!(a.start_init.as_deref(), Some("proxy"));
    assert_eq!(a.init_attempt, 1);
    assert!(a.start.is_empty() && !a.kill_pod);

    // Once the app is done, the pod is stopped, sidecar included.
    let rt = rt.exited("sb0", "a", 1, 0, NOW - S);
    let a = run(&pod, &rt);
    assert!(a.kill_pod);
    assert!(a.start_init.is_none() && a.start.is_empty());
}
