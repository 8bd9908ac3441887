//! Real kubectl against a real `berth apiserver` (embedded store): the everyday workflow.

// Test helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tests::apiserver::{Backend, TestApiserver};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: busybox:1.35
        command: ["httpd", "-f", "-p", "8080"]
        ports: [{containerPort: 8080, name: http}]
        env: [{name: MODE, value: blue}]
      - name: sidecar
        image: busybox:1.35
        command: ["sleep", "infinity"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn kubectl_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestApiserver::start_in(dir.path(), 0).unwrap();
    workflow(&api);
}

#[test]
fn kubectl_workflow_on_etcd() {
    let etcd = tests::etcd::TestEtcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = TestApiserver::start_with(dir.path(), 0, Backend::Etcd(etcd.url.clone())).unwrap();
    workflow(&api);
}

#[test]
fn tokens_and_anonymous_access() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokens.csv"),
        "s3cret,alice,1001,\"dev,ops\"\n",
    )
    .unwrap();
    let api = TestApiserver::start_in(dir.path(), 0).unwrap();
    let ca = dir.path().join("ca.crt");
    // kubectl with a kubeconfig whose user is a bearer token.
    let kc = dir.path().join("alice.kubeconfig");
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: alice\n  user:\n    token: s3cret\ncontexts:\n- name: c\n  context: {{cluster: c, user: alice}}\ncurrent-context: c\n",
        api.url,
        ca.display()
    );
    assert!(ca_pem.contains("BEGIN CERTIFICATE"));
    std::fs::write(&kc, kubeconfig).unwrap();
    let ok = tests::apiserver::kubectl(&kc, &["get", "namespaces", "-o", "name"], None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("namespace/default"));

    // Raw HTTPS: a wrong token and no credentials get 401 Status; health and version are open.
    let curl = |path: &str, token: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--cacert"])
            .arg(&ca)
            .arg(format!("{}{path}", api.url));
        if let Some(t) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let denied: Value = json(&curl("/api/v1/namespaces", Some("wrong")));
    assert_eq!(
        (denied["code"].as_i64(), denied["reason"].as_str()),
        (Some(401), Some("Unauthorized"))
    );
    let anonymous: Value = json(&curl("/api/v1/namespaces", None));
    assert_eq!(anonymous["code"], 401);
    let allowed: Value = json(&curl("/api/v1/namespaces", Some("s3cret")));
    assert_eq!(allowed["kind"], "NamespaceList");
    assert_eq!(curl("/healthz", None), "ok");
    assert!(curl("/version", None).contains("gitVersion"));
}

fn workflow(api: &TestApiserver) {
    // Discovery and the bootstrap objects.
    let out = api.kubectl_ok(&["get", "namespaces"], None);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "{out}");
    }
    let svc = json(&api.kubectl_ok(
        &["get", "svc", "kubernetes", "-n", "default", "-o", "json"],
        None,
    ));
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");

    api.kubectl_ok(&["create", "namespace", "shop"], None);
    let out = api.kubectl_ok(&["apply", "-f", "-"], Some(APP));
    assert!(
        out.contains("deployment.apps/web created") && out.contains("service/web created"),
        "{out}"
    );

    // Defaults and allocation are visible.
    let d = json(&api.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"], None));
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["metadata"]["generation"], 1);
    let s = json(&api.kubectl_ok(&["get", "service/web", "-n", "shop", "-o", "json"], None));
    let ip = s["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.") && ip != "10.96.0.1", "{ip}");

    // Re-apply an edited manifest: image and env change, the other container stays.
    let edited = APP
        .replace(
            "image: busybox:1.35\n        command: [\"httpd\"",
            "image: busybox:latest\n        command: [\"httpd\"",
        )
        .replace("value: blue", "value: green");
    let out = api.kubectl_ok(&["apply", "-f", "-"], Some(&edited));
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let d = json(&api.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"], None));
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "busybox:latest");
    assert_eq!(containers[0]["env"][0]["value"], "green");
    assert_eq!(d["metadata"]["generation"], 2);

    // Output formats and describe.
    let yaml = api.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "yaml"], None);
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("name: web"),
        "{yaml}"
    );
    let wide = api.kubectl_ok(&["get", "deploy", "-n", "shop", "-o", "wide"], None);
    assert!(wide.contains("web"), "{wide}");
    // Server-side Table output: upstream's columns, wide ones only with -o wide.
    let header = wide.lines().next().unwrap_or("");
    for col in [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ] {
        assert!(header.contains(col), "{col} missing in {header}");
    }
    let plain = api.kubectl_ok(&["get", "deploy", "-n", "shop"], None);
    assert!(
        !plain.lines().next().unwrap_or("").contains("CONTAINERS"),
        "{plain}"
    );
    assert!(plain.contains("0/2"), "{plain}");
    let svcs = api.kubectl_ok(&["get", "svc", "-n", "shop"], None);
    assert!(
        svcs.contains("CLUSTER-IP") && svcs.contains("80/TCP"),
        "{svcs}"
    );
    let described = api.kubectl_ok(&["describe", "deploy", "web", "-n", "shop"], None);
    assert!(
        described.contains("Name:") && described.contains("web"),
        "{described}"
    );

    // label, annotate, the three patch types, scale, set image.
    api.kubectl_ok(
        &["label", "deploy", "web", "-n", "shop", "tier=frontend"],
        None,
    );
    api.kubectl_ok(
        &["annotate", "deploy", "web", "-n", "shop", "owner=team-a"],
        None,
    );
    api.kubectl_ok(
        &[
            "patch",
            "deploy",
            "web",
            "-n",
            "shop",
            "-p",
            r#"{"spec":{"revisionHistoryLimit":3}}"#,
        ],
        None,
    );
    api.kubectl_ok(
        &[
            "patch",
            "deploy",
            "web",
            "-n",
            "shop",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
        ],
        None,
    );
    api.kubectl_ok(&["patch", "deploy", "web", "-n", "shop", "--type", "json", "-p", r#"[{"op":"add","path":"/spec/minReadySeconds","value":5},{"op":"replace","path":"/spec/replicas","value":2}]"#], None);
    api.kubectl_ok(
        &["scale", "deploy", "web", "-n", "shop", "--replicas", "5"],
        None,
    );
    api.kubectl_ok(
        &[
            "set",
            "image",
            "deploy/web",
            "-n",
            "shop",
            "sidecar=busybox:1.36",
        ],
        None,
    );
    let d = json(&api.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"], None));
    assert_eq!(d["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(d["metadata"]["labels"]["merged"], "yes");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 3);
    assert_eq!(d["spec"]["minReadySeconds"], 5);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "busybox:1.36"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:latest"
    );

    // Label selectors.
    let names = api.kubectl_ok(
        &[
            "get",
            "deploy",
            "-n",
            "shop",
            "-l",
            "tier=frontend",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(names.trim(), "deployment.apps/web");
    let none = api.kubectl_ok(
        &[
            "get",
            "deploy",
            "-n",
            "shop",
            "-l",
            "tier!=frontend",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(none.trim(), "");

    // Invalid manifests are refused with the field named, and nothing is stored.
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: shop}\nspec:\n  containers:\n  - name: c\n";
    let out = api.kubectl(&["apply", "-f", "-"], Some(bad));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.containers[0].image"), "{err}");
    assert!(
        !api.kubectl(&["get", "pod", "bad", "-n", "shop"], None)
            .status
            .success()
    );

    // Unknown fields are refused (kubectl leaves validation to the server).
    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, namespace: shop}\ndata: {a: b}\ndatta: {c: d}\n";
    let out = api.kubectl(&["apply", "-f", "-"], Some(typo));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field \"datta\""), "{err}");
    let out = api.kubectl(&["apply", "--validate=false", "-f", "-"], Some(typo));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Delete.
    let out = api.kubectl_ok(&["delete", "deploy", "web", "-n", "shop"], None);
    assert!(out.contains("deleted"), "{out}");
    let out = api.kubectl(&["get", "deploy", "web", "-n", "shop"], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound")
            || String::from_utf8_lossy(&out.stderr).contains("not found")
    );
}

#[test]
fn restart_keeps_objects_and_resource_versions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestApiserver::start_in(dir.path(), 0).unwrap();
    api.kubectl_ok(&["create", "configmap", "c1", "--from-literal=k=v"], None);
    let before = json(&api.kubectl_ok(&["get", "cm", "c1", "-o", "json"], None));
    let rv_before: i64 = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let uid = before["metadata"]["uid"].clone();
    let port = api.port;
    api.stop();

    let api = TestApiserver::start_in(dir.path(), port).unwrap();
    let after = json(&api.kubectl_ok(&["get", "cm", "c1", "-o", "json"], None));
    assert_eq!(after["metadata"]["uid"], uid);
    assert_eq!(after["data"]["k"], "v");
    api.kubectl_ok(&["create", "configmap", "c2", "--from-literal=k=v"], None);
    let c2 = json(&api.kubectl_ok(&["get", "cm", "c2", "-o", "json"], None));
    let rv2: i64 = c2["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv_before, "{rv2} <= {rv_before}");

    // On another port, the `kubernetes` endpoints follow the server.
    api.stop();
    let api = TestApiserver::start_in(dir.path(), 0).unwrap();
    let ep = json(&api.kubectl_ok(&["get", "endpoints", "kubernetes", "-o", "json"], None));
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], api.port);
}

#[test]
fn kubectl_get_watch_streams_changes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let api = TestApiserver::start_in(dir.path(), 0).unwrap();
    let mut child = std::process::Command::new(tests::apiserver::kubectl_binary())
        .arg("--kubeconfig")
        .arg(&api.kubeconfig)
        .args([
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
            "--request-timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give the watch time to start, then change things.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    api.kubectl_ok(
        &["create", "configmap", "watched", "--from-literal=a=1"],
        None,
    );
    api.kubectl_ok(&["label", "configmap", "watched", "x=y"], None);
    api.kubectl_ok(&["delete", "configmap", "watched"], None);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 3 && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            // Table rows: EVENT NAME DATA AGE.
            if line.split_whitespace().nth(1) == Some("watched") {
                seen.push(line.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
}
