//! The pure parts of the prober: probe settings and their defaults, the threshold counter,
//! port resolution, handlers built from probes, and the gRPC health messages.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet::prober::handlers::{
    Handler, HttpGet, authority, grpc_health_request, grpc_health_status, resolve_port,
};
use kubelet::prober::{ProbeKind, ProbeSettings, ResultRun};
use serde_json::json;

fn probe(v: serde_json::Value) -> Probe {
    serde_json::from_value(v).unwrap()
}

fn container(v: serde_json::Value) -> Container {
    serde_json::from_value(v).unwrap()
}

#[test]
fn settings_defaults_and_minimums() {
    let p = probe(json!({"exec": {"command": ["true"]}}));
    let s = ProbeSettings::new(ProbeKind::Readiness, &p);
    assert_eq!(s.initial_delay, Duration::ZERO);
    assert_eq!(s.period, Duration::from_secs(10));
    assert_eq!(s.timeout, Duration::from_secs(1));
    assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));

    let p = probe(json!({
        "exec": {"command": ["true"]}, "initialDelaySeconds": -5, "periodSeconds": 0,
        "timeoutSeconds": 0, "successThreshold": 3, "failureThreshold": 0,
    }));
    let s = ProbeSettings::new(ProbeKind::Readiness, &p);
    assert_eq!(s.initial_delay, Duration::ZERO);
    assert_eq!(s.period, Duration::from_secs(1));
    assert_eq!(s.timeout, Duration::from_secs(1));
    assert_eq!((s.success_threshold, s.failure_threshold), (3, 1));
    // Liveness and startup probes always need one success.
    for kind in [ProbeKind::Liveness, ProbeKind::Startup] {
        assert_eq!(ProbeSettings::new(kind, &p).success_threshold, 1);
    }
}

#[test]
fn first_probe_waits_the_rest_of_the_initial_delay() {
    let p = probe(json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 10}));
    let s = ProbeSettings::new(ProbeKind::Liveness, &p);
    let start_ns: i64 = 1_000_000_000_000;
    let now = UNIX_EPOCH + Duration::from_nanos(start_ns as u64) + Duration::from_secs(4);
    assert_eq!(s.first_probe_in(start_ns, now), Duration::from_secs(6));
    let later = now + Duration::from_secs(60);
    assert_eq!(s.first_probe_in(start_ns, later), Duration::ZERO);
    // Unknown start: the whole delay.
    assert_eq!(s.first_probe_in(0, now), Duration::from_secs(10));
}

#[test]
fn result_run_needs_consecutive_results() {
    let p = probe(json!({
        "exec": {"command": ["true"]}, "successThreshold": 2, "failureThreshold": 3,
    }));
    let s = ProbeSettings::new(ProbeKind::Readiness, &p);
    let mut run = ResultRun::default();
    assert_eq!(run.observe(true, &s), None);
    assert_eq!(run.observe(true, &s), Some(true));
    assert_eq!(run.observe(true, &s), Some(true));
    assert_eq!(run.observe(false, &s), None);
    assert_eq!(run.observe(false, &s), None);
    assert_eq!(run.observe(true, &s), None);
    assert_eq!(run.observe(false, &s), None);
    assert_eq!(run.observe(false, &s), None);
    assert_eq!(run.observe(false, &s), Some(false));
    assert_eq!(run.observe(false, &s), Some(false));
}

#[test]
fn ports_by_number_or_name() {
    let c = container(json!({
        "name": "app",
        "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}],
    }));
    assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
    assert_eq!(
        resolve_port(&IntOrString::String("http".into()), &c),
        Ok(8080)
    );
    assert_eq!(
        resolve_port(&IntOrString::String("8081".into()), &c),
        Ok(8081)
    );
    let err = resolve_port(&IntOrString::String("metrics".into()), &c).unwrap_err();
    assert!(err.contains("no port named \"metrics\""), "{err}");
    assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
    assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
}

#[test]
fn handlers_from_probes() {
    let c = container(json!({
        "name": "app",
        "env": [{"name": "A", "value": "x"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "web", "containerPort": 80}],
    }));
    let h = Handler::new(
        &probe(json!({"exec": {"command": ["sh", "-c", "$(A) $(B)"]}})),
        &c,
    );
    assert_eq!(
        h,
        Handler::Exec(vec!["sh".into(), "-c".into(), "x $(B)".into()])
    );

    let h = Handler::new(
        &probe(json!({"httpGet": {"port": "web", "path": "health", "host": ""}})),
        &c,
    );
    assert_eq!(
        h,
        Handler::HttpGet(HttpGet {
            scheme: "HTTP".into(),
            host: None,
            port: Ok(80),
            path: "/health".into(),
            headers: vec![],
        })
    );
    let h = Handler::new(&probe(json!({"tcpSocket": {"port": 22}})), &c);
    assert_eq!(
        h,
        Handler::TcpSocket {
            host: None,
            port: Ok(22)
        }
    );
    let h = Handler::new(&probe(json!({"grpc": {"port": 50051}})), &c);
    assert_eq!(
        h,
        Handler::Grpc {
            port: Ok(50051),
            service: String::new()
        }
    );
    assert_eq!(Handler::new(&probe(json!({})), &c), Handler::Missing);
}

#[test]
fn authorities() {
    assert_eq!(authority("10.0.0.1", 80), "10.0.0.1:80");
    assert_eq!(authority("fd00::1", 80), "[fd00::1]:80");
    assert_eq!(authority("example.com", 8080), "example.com:8080");
}

#[test]
fn grpc_health_messages() {
    assert_eq!(grpc_health_request(""), [0, 0, 0, 0, 0]);
    assert_eq!(
        grpc_health_request("svc"),
        [0, 0, 0, 0, 5, 0x0a, 3, b's', b'v', b'c']
    );
    assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
    assert_eq!(grpc_health_status(&[0, 0, 0, 0, 0]), Ok(0));
    // Unknown fields are skipped.
    assert_eq!(
        grpc_health_status(&[0, 0, 0, 0, 6, 0x12, 2, b'h', b'i', 0x08, 2]),
        Ok(2)
    );
    assert!(grpc_health_status(&[]).is_err());
    assert!(grpc_health_status(&[1, 0, 0, 0, 0]).is_err());
    assert!(grpc_health_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
}
