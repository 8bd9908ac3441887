//! Pods: `NAME READY STATUS RESTARTS AGE`, wide `IP NODE NOMINATED NODE READINESS GATES`.
//!
//! STATUS follows kubectl's summary of a pod: the phase or `status.reason`, then the first init
//! container still in the way (`Init:1/2`, `Init:CrashLoopBackOff`, `Init:Error`), then the
//! first app container waiting or terminated with a reason (`ContainerCreating`,
//! `CrashLoopBackOff`, `Completed`, `OOMKilled`, `ExitCode:3`), and finally `Terminating` (or
//! `Unknown` on a lost node) once deletion has begun. Sidecars (init containers with
//! `restartPolicy: Always`) count towards READY and RESTARTS like app containers.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::format::{arr_at, at, has_obj, int_at, nonempty_at, obj_at, or, str_at};
use super::{AGE, Column, NAME, age_at, deleting, name, text};

/// Pod columns.
pub(super) const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Ready",
        "string",
        "Containers ready out of the pod's containers (sidecars included).",
    ),
    Column::new(
        "Status",
        "string",
        "A summary of the pod's phase and its containers' states.",
    ),
    Column::new(
        "Restarts",
        "string",
        "Container restarts, and how long ago the latest one happened.",
    ),
    AGE,
    Column::new("IP", "string", "The pod's primary IP address.").wide(),
    Column::new("Node", "string", "The node the pod is bound to.").wide(),
    Column::new(
        "Nominated Node",
        "string",
        "The node the scheduler nominated after preempting pods there.",
    )
    .wide(),
    Column::new(
        "Readiness Gates",
        "string",
        "Readiness gate conditions that are true, out of those the pod declares.",
    )
    .wide(),
];

/// The latest of two optional instants.
fn latest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.max(b)
}

/// When a container status's previous run finished, if it reported one.
fn last_finished(cs: &Value) -> Option<i64> {
    let t = obj_at(cs, &["lastState", "terminated"])?;
    t.get("finishedAt")
        .and_then(Value::as_str)
        .and_then(crate::object::parse_rfc3339)
}

/// `Signal:9` / `ExitCode:1` for a termination without a reason.
fn exit_text(term: &Value) -> String {
    let signal = int_at(term, &["signal"]);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int_at(term, &["exitCode"]))
    }
}

/// Whether a condition of `ty` has status `True`.
fn condition_true(o: &Value, ty: &str) -> bool {
    arr_at(o, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == ty && str_at(c, &["status"]) == "True")
}

/// The row's cells.
pub(super) fn cells(o: &Value, now: i64) -> Vec<Value> {
    let phase = str_at(o, &["status", "phase"]);
    let mut reason = nonempty_at(o, &["status", "reason"])
        .unwrap_or(phase)
        .to_string();
    if arr_at(o, &["status", "conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = "SchedulingGated".into();
    }

    let init_specs = arr_at(o, &["spec", "initContainers"]);
    let sidecars: HashSet<&str> = init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .map(|c| str_at(c, &["name"]))
        .collect();
    let sidecar_specs = init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();
    let total = arr_at(o, &["spec", "containers"]).len() + sidecar_specs;

    let mut ready: usize = 0;
    let mut restarts: i64 = 0;
    let mut last_restart: Option<i64> = None;
    let mut sidecar_restarts: i64 = 0;
    let mut sidecar_last_restart: Option<i64> = None;
    let mut initializing = false;
    for (i, cs) in arr_at(o, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(cs, &["restartCount"]);
        restarts = restarts.saturating_add(count);
        last_restart = latest(last_restart, last_finished(cs));
        let sidecar = sidecars.contains(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts = sidecar_restarts.saturating_add(count);
            sidecar_last_restart = latest(sidecar_last_restart, last_finished(cs));
        }
        let terminated = at(cs, &["state", "terminated"]).filter(|t| t.is_object());
        let waiting_reason = nonempty_at(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && at(cs, &["started"]).and_then(Value::as_bool) == Some(true) {
            if at(cs, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = match (terminated, waiting_reason) {
            (Some(t), _) => match nonempty_at(t, &["reason"]) {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:{}", exit_text(t)),
            },
            (None, Some(w)) if w != "PodInitializing" => format!("Init:{w}"),
            _ => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(o, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut running = false;
        for cs in arr_at(o, &["status", "containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(int_at(cs, &["restartCount"]));
            last_restart = latest(last_restart, last_finished(cs));
            let terminated = at(cs, &["state", "terminated"]).filter(|t| t.is_object());
            if let Some(w) = nonempty_at(cs, &["state", "waiting", "reason"]) {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match nonempty_at(t, &["reason"]) {
                    Some(r) => r.to_string(),
                    None => exit_text(t),
                };
            } else if at(cs, &["ready"]).and_then(Value::as_bool) == Some(true)
                && has_obj(cs, &["state", "running"])
            {
                running = true;
                ready += 1;
            }
        }
        // A pod whose finished container is reported last, yet has others still running, is
        // still running.
        if reason == "Completed" && running {
            reason = if condition_true(o, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if deleting(o) && str_at(o, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting(o) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since_secs(t, now)),
        _ => restarts.to_string(),
    };

    let ip = arr_at(o, &["status", "podIPs"])
        .first()
        .map(|p| str_at(p, &["ip"]))
        .or_else(|| nonempty_at(o, &["status", "podIP"]))
        .unwrap_or("");
    let gates = arr_at(o, &["spec", "readinessGates"]);
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr_at(o, &["status", "conditions"]);
        let met = gates
            .iter()
            .filter(|g| {
                let ty = str_at(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == ty)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };

    vec![
        name(o),
        text(format!("{ready}/{total}")),
        text(reason),
        text(restarts_text),
        age_at(o, now),
        text(or(ip, "<none>")),
        text(or(str_at(o, &["spec", "nodeName"]), "<none>")),
        text(or(str_at(o, &["status", "nominatedNodeName"]), "<none>")),
        text(gates_text),
    ]
}

/// Human duration from `t` to `now`.
fn since_secs(t: i64, now: i64) -> String {
    super::human_duration(now.saturating_sub(t))
}

/// Row conditions: finished pods are marked `Completed`.
pub(super) fn conditions(o: &Value) -> Option<Value> {
    let (reason, message) = match str_at(o, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod's containers all exited successfully."),
        "Failed" => (
            "Failed",
            "The pod's containers exited and at least one failed.",
        ),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}
