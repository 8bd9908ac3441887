//! Pods and pod templates: upstream's defaults (pod spec, containers, probes, volumes,
//! plus the Pod-only ones the admission chain adds: service account, priority, requests
//! from limits, Pending status with its QoS class), pod spec validation shared with the
//! workload templates, and the rules for updating a Pod.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::meta::validate_labels;
use super::names::{
    IP_MSG, PORT_RANGE_MSG, env_var_name_errors, is_ip, label_error, port_name_errors,
    qualified_name_errors, subdomain_error,
};
use super::util::{
    Ctx, IntOrStr, Obj, child, ensure_obj, get_str, index, key, obj_mut, objs_mut, set_default,
    set_default_nonzero, set_default_str,
};
use kubeutil::quantity::{QUANTITY_FORMAT_MSG, QuantityError, parse_milli, quantity_text};

/// The object a pod spec belongs to: a Pod or the template of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A Pod's own spec.
    Pod,
    /// `spec.template.spec` of a Deployment.
    Deployment,
    /// `spec.template.spec` of a ReplicaSet.
    ReplicaSet,
    /// `spec.template.spec` of a DaemonSet.
    DaemonSet,
}

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];
const PROBES: &[&str] = &["livenessProbe", "readinessProbe", "startupProbe"];
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];
const FIELD_REF_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_REF_NAMES: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];
/// Upstream's list of what a Pod update may change, used in the error message.
pub const POD_UPDATE_MSG: &str = "pod updates may not change fields other than \
    `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
    `spec.tolerations` (only additions to existing tolerations),\
    `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

// ---------------------------------------------------------------------------------------
// Defaulting

/// The image pull policy upstream defaults for `image`: `Always` for `:latest` or an image
/// without tag or digest, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

/// Defaults a Pod: its spec as in templates, then what only Pods get.
pub(crate) fn default_pod(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if let Some(spec) = ensure_obj(root, "spec") {
        default_pod_spec(spec);
        set_default(spec, "enableServiceLinks", Value::Bool(true));
        default_service_account(spec);
        let priority = match get_str(spec, "priorityClassName") {
            Some("system-node-critical") => 2_000_001_000,
            Some("system-cluster-critical") => 2_000_000_000,
            _ => 0,
        };
        set_default(spec, "priority", json!(priority));
        set_default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
        // Since 1.28 only Pods, not templates, get host ports on the host network.
        let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
        for list in ["containers", "initContainers"] {
            for ct in objs_mut(spec, list) {
                if let Some(res) = obj_mut(ct, "resources") {
                    default_requests_from_limits(res);
                }
                for port in objs_mut(ct, "ports").filter(|_| host_network) {
                    if let Some(cp) = port.get("containerPort").and_then(Value::as_i64) {
                        set_default_nonzero(port, "hostPort", cp);
                    }
                }
            }
        }
    }
    let qos = qos_class(root.get("spec").unwrap_or(&Value::Null));
    if let Some(status) = ensure_obj(root, "status") {
        set_default_str(status, "phase", "Pending");
        set_default_str(status, "qosClass", qos);
    }
}

/// `serviceAccountName` (from the deprecated `serviceAccount`, else `default`), mirrored.
fn default_service_account(spec: &mut Obj) {
    let is_str = |v: Option<&Value>| matches!(v, None | Some(Value::Null | Value::String(_)));
    if !is_str(spec.get("serviceAccountName")) || !is_str(spec.get("serviceAccount")) {
        return;
    }
    let non_empty = |k: &str| get_str(spec, k).filter(|s| !s.is_empty());
    let name = non_empty("serviceAccountName")
        .or_else(|| non_empty("serviceAccount"))
        .unwrap_or("default");
    let name = Value::String(name.to_string());
    spec.insert("serviceAccountName".into(), name.clone());
    spec.insert("serviceAccount".into(), name);
}

/// Requests default to limits, resource by resource.
fn default_requests_from_limits(res: &mut Obj) {
    let Some(limits) = res
        .get("limits")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned()
    else {
        return;
    };
    let Some(requests) = ensure_obj(res, "requests") else {
        return;
    };
    for (k, v) in limits {
        set_default(requests, &k, v);
    }
}

/// Defaults a pod spec (a Pod's or a template's).
pub(crate) fn default_pod_spec(spec: &mut Obj) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_str(spec, "schedulerName", "default-scheduler");
    set_default(spec, "securityContext", json!({}));
    for list in CONTAINER_LISTS {
        for ct in objs_mut(spec, list) {
            default_container(ct);
        }
    }
    for v in objs_mut(spec, "volumes") {
        default_volume(v);
    }
    if let Some(overhead) = obj_mut(spec, "overhead") {
        quantities_to_strings(overhead);
    }
}

/// Rewrites numeric quantities (`cpu: 1`) as strings, as upstream stores them.
pub(crate) fn quantities_to_strings(list: &mut Obj) {
    for v in list.values_mut() {
        if v.is_number()
            && let Some(t) = quantity_text(v)
        {
            *v = Value::String(t);
        }
    }
}

fn default_container(ct: &mut Obj) {
    if let Some(image) = get_str(ct, "image").filter(|i| !i.is_empty()) {
        let policy = default_pull_policy(image);
        set_default_str(ct, "imagePullPolicy", policy);
    }
    set_default_str(ct, "terminationMessagePath", "/dev/termination-log");
    set_default_str(ct, "terminationMessagePolicy", "File");
    if let Some(res) = ensure_obj(ct, "resources") {
        for list in ["limits", "requests"] {
            if let Some(l) = obj_mut(res, list) {
                quantities_to_strings(l);
            }
        }
    }
    for port in objs_mut(ct, "ports") {
        set_default_str(port, "protocol", "TCP");
    }
    for probe in PROBES {
        if let Some(p) = obj_mut(ct, probe) {
            for (k, v) in [
                ("timeoutSeconds", 1),
                ("periodSeconds", 10),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ] {
                set_default_nonzero(p, k, v);
            }
            default_http_get(p);
        }
    }
    if let Some(lc) = obj_mut(ct, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = obj_mut(lc, hook) {
                default_http_get(h);
            }
        }
    }
    for env in objs_mut(ct, "env") {
        if let Some(field_ref) = obj_mut(env, "valueFrom").and_then(|vf| obj_mut(vf, "fieldRef")) {
            set_default_str(field_ref, "apiVersion", "v1");
        }
    }
}

fn default_http_get(handler: &mut Obj) {
    if let Some(h) = obj_mut(handler, "httpGet") {
        set_default_str(h, "path", "/");
        set_default_str(h, "scheme", "HTTP");
    }
}

fn default_volume(v: &mut Obj) {
    if !VOLUME_SOURCES
        .iter()
        .any(|s| v.get(*s).is_some_and(|x| !x.is_null()))
    {
        v.insert("emptyDir".into(), json!({}));
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = obj_mut(v, src) {
            set_default(s, "defaultMode", json!(0o644));
        }
    }
    if let Some(h) = obj_mut(v, "hostPath") {
        set_default(h, "type", json!(""));
    }
    if let Some(e) = obj_mut(v, "emptyDir")
        && let Some(size) = e.get_mut("sizeLimit")
        && size.is_number()
        && let Some(t) = quantity_text(size)
    {
        *size = Value::String(t);
    }
}

/// The QoS class of a pod spec: `Guaranteed` when every container limits cpu and memory
/// and requests equal limits, `BestEffort` without any cpu or memory request or limit,
/// else `Burstable`.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|l| spec.get(l).and_then(Value::as_array))
        .flatten();
    for ct in containers {
        let res = ct.get("resources");
        let sum = |which: &str, into: &mut BTreeMap<&str, i128>| -> usize {
            let mut seen = 0;
            for name in ["cpu", "memory"] {
                let q = res
                    .and_then(|r| r.get(which))
                    .and_then(|l| l.get(name))
                    .and_then(quantity_text)
                    .and_then(|t| parse_milli(&t).ok())
                    .filter(|m| *m > 0);
                if let Some(m) = q {
                    let total = into.entry(name).or_default();
                    *total = total.saturating_add(m);
                    seen += 1;
                }
            }
            seen
        };
        sum("requests", &mut requests);
        if sum("limits", &mut limits) < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        "BestEffort"
    } else if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ---------------------------------------------------------------------------------------
// Validation

/// Validates a Pod's spec (metadata is checked by the caller).
pub(crate) fn validate_pod(c: &mut Ctx, obj: &Value, create: bool) {
    validate_pod_spec(c, obj.get("spec"), "spec", Owner::Pod, create);
}

/// What the containers of one pod spec are checked against.
struct PodCtx<'a> {
    volumes: HashSet<&'a str>,
    host_network: bool,
}

/// Validates a pod spec at `path` (`spec`, `spec.template.spec`).
pub(crate) fn validate_pod_spec(
    c: &mut Ctx,
    spec: Option<&Value>,
    path: &str,
    owner: Owner,
    create: bool,
) {
    let Some(spec) = c.obj_or_empty(spec, path) else {
        return;
    };
    let p = |f: &str| child(path, f);
    let volumes = validate_volumes(c, spec.get("volumes"), &p("volumes"));
    let host_network = c.bool(spec.get("hostNetwork"), &p("hostNetwork")) == Some(true);
    let pc = PodCtx {
        volumes,
        host_network,
    };
    let mut names = HashSet::new();
    let containers = c.required_items(spec.get("containers"), &p("containers"));
    for (i, ct) in containers.iter().enumerate() {
        validate_container(c, ct, &index(&p("containers"), i), &pc, false, &mut names);
    }
    for (i, ct) in c
        .items(spec.get("initContainers"), &p("initContainers"))
        .iter()
        .enumerate()
    {
        validate_container(
            c,
            ct,
            &index(&p("initContainers"), i),
            &pc,
            true,
            &mut names,
        );
    }
    let ephemeral = c.items(spec.get("ephemeralContainers"), &p("ephemeralContainers"));
    if !ephemeral.is_empty() && owner != Owner::Pod {
        c.forbidden(
            &p("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        );
    } else if !ephemeral.is_empty() && create {
        c.forbidden(&p("ephemeralContainers"), "cannot be set on create");
    }

    let supported: &[&str] = if owner == Owner::Pod {
        RESTART_POLICIES
    } else {
        &["Always"]
    };
    c.one_of(spec.get("restartPolicy"), &p("restartPolicy"), supported);
    let dns_policy = c.one_of(spec.get("dnsPolicy"), &p("dnsPolicy"), DNS_POLICIES);
    validate_dns_config(
        c,
        spec.get("dnsConfig"),
        &p("dnsConfig"),
        dns_policy.as_deref() == Some("None"),
    );
    c.int_at_least(
        spec.get("terminationGracePeriodSeconds"),
        &p("terminationGracePeriodSeconds"),
        0,
    );
    let deadline_path = p("activeDeadlineSeconds");
    if let Some(d) = c.int(spec.get("activeDeadlineSeconds"), &deadline_path) {
        match owner {
            Owner::Pod if !(1..=i64::from(i32::MAX)).contains(&d) => c.invalid_int(
                &deadline_path,
                d,
                "must be between 1 and 2147483647, inclusive",
            ),
            Owner::Pod => {}
            Owner::DaemonSet => c.invalid_int(
                &deadline_path,
                d,
                "activeDeadlineSeconds must be nil for daemons",
            ),
            Owner::Deployment | Owner::ReplicaSet => c.forbidden(
                &deadline_path,
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            ),
        }
    }
    validate_labels(c, spec.get("nodeSelector"), &p("nodeSelector"));
    for (field, check) in [
        ("nodeName", subdomain_error as fn(&str) -> Option<String>),
        ("serviceAccountName", subdomain_error),
        ("serviceAccount", subdomain_error),
        ("priorityClassName", subdomain_error),
        ("runtimeClassName", subdomain_error),
        ("schedulerName", subdomain_error),
        ("hostname", label_error),
        ("subdomain", label_error),
    ] {
        if let Some(v) = c.str(spec.get(field), &p(field)).filter(|v| !v.is_empty())
            && let Some(e) = check(v)
        {
            c.invalid_str(&p(field), v, &e);
        }
    }
    for field in [
        "hostPID",
        "hostIPC",
        "hostUsers",
        "shareProcessNamespace",
        "enableServiceLinks",
        "automountServiceAccountToken",
        "setHostnameAsFQDN",
    ] {
        c.bool(spec.get(field), &p(field));
    }
    for field in ["securityContext", "affinity", "os"] {
        c.obj(spec.get(field), &p(field));
    }
    c.int(spec.get("priority"), &p("priority"));
    c.one_of(
        spec.get("preemptionPolicy"),
        &p("preemptionPolicy"),
        &["Never", "PreemptLowerPriority"],
    );
    for (i, s) in c
        .items(spec.get("imagePullSecrets"), &p("imagePullSecrets"))
        .iter()
        .enumerate()
    {
        let sp = index(&p("imagePullSecrets"), i);
        if let Some(s) = c.obj_or_empty(Some(s), &sp) {
            c.str(s.get("name"), &child(&sp, "name"));
        }
    }
    validate_tolerations(c, spec.get("tolerations"), &p("tolerations"));
    validate_spread_constraints(
        c,
        spec.get("topologySpreadConstraints"),
        &p("topologySpreadConstraints"),
    );
    validate_resource_list(c, spec.get("overhead"), &p("overhead"), false);
    let gates_path = p("schedulingGates");
    let mut gates = HashSet::new();
    for (i, g) in c
        .items(spec.get("schedulingGates"), &gates_path)
        .iter()
        .enumerate()
    {
        let gp = index(&gates_path, i);
        let Some(g) = c.obj_or_empty(Some(g), &gp) else {
            continue;
        };
        if let Some(name) = c.required_str(g.get("name"), &child(&gp, "name")) {
            for e in qualified_name_errors(name) {
                c.invalid_str(&child(&gp, "name"), name, &e);
            }
            if !gates.insert(name) {
                c.duplicate(&child(&gp, "name"), &json!(name));
            }
        }
    }
    for (i, h) in c
        .items(spec.get("hostAliases"), &p("hostAliases"))
        .iter()
        .enumerate()
    {
        let hp = index(&p("hostAliases"), i);
        let Some(h) = c.obj_or_empty(Some(h), &hp) else {
            continue;
        };
        if let Some(ip) = c.required_str(h.get("ip"), &child(&hp, "ip"))
            && !is_ip(ip)
        {
            c.invalid_str(&child(&hp, "ip"), ip, IP_MSG);
        }
        c.str_list(h.get("hostnames"), &child(&hp, "hostnames"));
    }
}

fn validate_dns_config(c: &mut Ctx, v: Option<&Value>, path: &str, policy_none: bool) {
    let Some(cfg) = c.obj(v, path) else {
        if policy_none {
            c.required(path, "must provide `dnsConfig` when `dnsPolicy` is None");
        }
        return;
    };
    let ns_path = child(path, "nameservers");
    let servers = c.str_list(cfg.get("nameservers"), &ns_path);
    if policy_none && servers.is_empty() {
        c.required(
            &ns_path,
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        );
    }
    if servers.len() > 3 {
        c.invalid(
            &ns_path,
            cfg.get("nameservers").unwrap_or(&Value::Null),
            "must not have more than 3 nameservers",
        );
    }
    for (i, s) in servers.iter().enumerate() {
        if !is_ip(s) {
            c.invalid_str(&index(&ns_path, i), s, "must be valid IP address");
        }
    }
    let searches = c.str_list(cfg.get("searches"), &child(path, "searches"));
    if searches.len() > 32 {
        c.invalid(
            &child(path, "searches"),
            &json!(searches),
            "must not have more than 32 search paths",
        );
    }
    for (i, o) in c
        .items(cfg.get("options"), &child(path, "options"))
        .iter()
        .enumerate()
    {
        let op = index(&child(path, "options"), i);
        if let Some(o) = c.obj_or_empty(Some(o), &op) {
            c.required_str(o.get("name"), &child(&op, "name"));
            c.str(o.get("value"), &child(&op, "value"));
        }
    }
}

fn validate_volumes<'a>(c: &mut Ctx, v: Option<&'a Value>, path: &str) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, vol) in c.items(v, path).iter().enumerate() {
        let vp = index(path, i);
        let Some(vol) = c.obj_or_empty(Some(vol), &vp) else {
            continue;
        };
        if let Some(name) = c.required_str(vol.get("name"), &child(&vp, "name")) {
            if let Some(e) = label_error(name) {
                c.invalid_str(&child(&vp, "name"), name, &e);
            }
            if !names.insert(name) {
                c.duplicate(&child(&vp, "name"), &json!(name));
            }
        }
        let present: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| vol.get(*s).is_some_and(|x| !x.is_null()))
            .collect();
        match present.as_slice() {
            [] => c.required(&vp, "must specify a volume type"),
            [_] => {}
            [_, second, ..] => c.forbidden(
                &child(&vp, second),
                "may not specify more than 1 volume type",
            ),
        }
        for src in present {
            let sp = child(&vp, src);
            let Some(s) = c.obj(vol.get(src), &sp) else {
                continue;
            };
            validate_volume_source(c, src, s, &sp);
        }
    }
    names
}

fn validate_volume_source(c: &mut Ctx, src: &str, s: &Obj, sp: &str) {
    let f = |n: &str| child(sp, n);
    match src {
        "hostPath" => {
            c.required_str(s.get("path"), &f("path"));
            c.one_of(
                s.get("type"),
                &f("type"),
                &[
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
            );
        }
        "emptyDir" => {
            if let Some(m) = c.str(s.get("medium"), &f("medium"))
                && !(m.is_empty() || m == "Memory" || m.starts_with("HugePages"))
            {
                c.not_supported(&f("medium"), m, &["", "Memory", "HugePages"]);
            }
            if let Some(size) = s.get("sizeLimit").filter(|v| !v.is_null()) {
                validate_quantity(c, size, &f("sizeLimit"));
            }
        }
        "secret" => {
            c.required_str(s.get("secretName"), &f("secretName"));
            validate_mode(c, s.get("defaultMode"), &f("defaultMode"));
            validate_key_to_paths(c, s.get("items"), &f("items"));
            c.bool(s.get("optional"), &f("optional"));
        }
        "configMap" => {
            c.required_str(s.get("name"), &f("name"));
            validate_mode(c, s.get("defaultMode"), &f("defaultMode"));
            validate_key_to_paths(c, s.get("items"), &f("items"));
            c.bool(s.get("optional"), &f("optional"));
        }
        "persistentVolumeClaim" => {
            c.required_str(s.get("claimName"), &f("claimName"));
            c.bool(s.get("readOnly"), &f("readOnly"));
        }
        "nfs" => {
            c.required_str(s.get("server"), &f("server"));
            c.required_str(s.get("path"), &f("path"));
        }
        "csi" => {
            c.required_str(s.get("driver"), &f("driver"));
        }
        "downwardAPI" => {
            validate_mode(c, s.get("defaultMode"), &f("defaultMode"));
            for (i, item) in c.items(s.get("items"), &f("items")).iter().enumerate() {
                let ip = index(&f("items"), i);
                let Some(item) = c.obj_or_empty(Some(item), &ip) else {
                    continue;
                };
                if let Some(p) = c.required_str(item.get("path"), &child(&ip, "path")) {
                    validate_local_path(c, p, &child(&ip, "path"));
                }
                validate_mode(c, item.get("mode"), &child(&ip, "mode"));
            }
        }
        "projected" => {
            validate_mode(c, s.get("defaultMode"), &f("defaultMode"));
            c.items(s.get("sources"), &f("sources"));
        }
        _ => {}
    }
}

fn validate_mode(c: &mut Ctx, v: Option<&Value>, path: &str) {
    if let Some(m) = c.int(v, path)
        && !(0..=0o777).contains(&m)
    {
        c.invalid_int(
            path,
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

fn validate_key_to_paths(c: &mut Ctx, v: Option<&Value>, path: &str) {
    for (i, item) in c.items(v, path).iter().enumerate() {
        let ip = index(path, i);
        let Some(item) = c.obj_or_empty(Some(item), &ip) else {
            continue;
        };
        c.required_str(item.get("key"), &child(&ip, "key"));
        if let Some(p) = c.required_str(item.get("path"), &child(&ip, "path")) {
            validate_local_path(c, p, &child(&ip, "path"));
        }
        validate_mode(c, item.get("mode"), &child(&ip, "mode"));
    }
}

/// A path inside a volume: relative, without `..` elements.
fn validate_local_path(c: &mut Ctx, p: &str, path: &str) {
    if p.starts_with('/') {
        c.invalid_str(path, p, "must be a relative path");
    }
    if p.split('/').any(|e| e == "..") {
        c.invalid_str(path, p, "must not contain '..'");
    }
}

fn validate_container<'a>(
    c: &mut Ctx,
    v: &'a Value,
    path: &str,
    pc: &PodCtx<'_>,
    init: bool,
    names: &mut HashSet<&'a str>,
) {
    let Some(ct) = c.obj_or_empty(Some(v), path) else {
        return;
    };
    let f = |n: &str| child(path, n);
    if let Some(name) = c.required_str(ct.get("name"), &f("name")) {
        if let Some(e) = label_error(name) {
            c.invalid_str(&f("name"), name, &e);
        }
        if !names.insert(name) {
            c.duplicate(&f("name"), &json!(name));
        }
    }
    if let Some(image) = c.required_str(ct.get("image"), &f("image"))
        && image.trim() != image
    {
        c.invalid_str(
            &f("image"),
            image,
            "must not have leading or trailing whitespace",
        );
    }
    c.one_of(
        ct.get("imagePullPolicy"),
        &f("imagePullPolicy"),
        PULL_POLICIES,
    );
    c.str_list(ct.get("command"), &f("command"));
    c.str_list(ct.get("args"), &f("args"));
    c.str(ct.get("workingDir"), &f("workingDir"));
    c.str(
        ct.get("terminationMessagePath"),
        &f("terminationMessagePath"),
    );
    c.one_of(
        ct.get("terminationMessagePolicy"),
        &f("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    );
    for field in ["stdin", "stdinOnce", "tty"] {
        c.bool(ct.get(field), &f(field));
    }
    c.obj(ct.get("securityContext"), &f("securityContext"));
    validate_ports(c, ct.get("ports"), &f("ports"), pc.host_network);
    validate_env(c, ct.get("env"), &f("env"));
    validate_env_from(c, ct.get("envFrom"), &f("envFrom"));
    validate_mounts(c, ct.get("volumeMounts"), &f("volumeMounts"), &pc.volumes);
    validate_resources(c, ct.get("resources"), &f("resources"));

    let restart = c
        .str(ct.get("restartPolicy"), &f("restartPolicy"))
        .filter(|r| !r.is_empty());
    let sidecar = init && restart == Some("Always");
    match restart {
        Some(r) if init && r != "Always" => c.not_supported(&f("restartPolicy"), r, &["Always"]),
        Some(_) if !init => c.forbidden(
            &f("restartPolicy"),
            "may not be set for non-init containers",
        ),
        _ => {}
    }
    for probe in PROBES {
        let pp = f(probe);
        let Some(pr) = c.obj(ct.get(*probe), &pp) else {
            continue;
        };
        if init && !sidecar {
            c.forbidden(
                &pp,
                "may not be set for init containers without restartPolicy=Always",
            );
            continue;
        }
        validate_probe(c, pr, &pp, *probe != "readinessProbe");
    }
    if let Some(lc) = c.obj(ct.get("lifecycle"), &f("lifecycle")) {
        if init && !sidecar {
            c.forbidden(
                &f("lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            );
        } else {
            for hook in ["postStart", "preStop"] {
                let hp = child(&f("lifecycle"), hook);
                if let Some(h) = c.obj(lc.get(hook), &hp) {
                    validate_handler(c, h, &hp, &["exec", "httpGet", "tcpSocket", "sleep"]);
                }
            }
        }
    }
}

fn validate_ports(c: &mut Ctx, v: Option<&Value>, path: &str, host_network: bool) {
    let mut names = HashSet::new();
    for (i, port) in c.items(v, path).iter().enumerate() {
        let pp = index(path, i);
        let Some(port) = c.obj_or_empty(Some(port), &pp) else {
            continue;
        };
        let f = |n: &str| child(&pp, n);
        let before = c.len();
        let container_port = c.int(port.get("containerPort"), &f("containerPort"));
        match container_port {
            None | Some(0) if c.len() == before => c.required(&f("containerPort"), ""),
            Some(n) if !(1..=65535).contains(&n) => {
                c.invalid_int(&f("containerPort"), n, PORT_RANGE_MSG)
            }
            _ => {}
        }
        match c.int(port.get("hostPort"), &f("hostPort")) {
            Some(h) if h != 0 && !(1..=65535).contains(&h) => {
                c.invalid_int(&f("hostPort"), h, PORT_RANGE_MSG)
            }
            Some(h) if h != 0 && host_network && container_port.is_some_and(|cp| cp != h) => c
                .invalid_int(
                    &f("hostPort"),
                    h,
                    "must match `containerPort` when `hostNetwork` is true",
                ),
            _ => {}
        }
        c.one_of(port.get("protocol"), &f("protocol"), PROTOCOLS);
        if let Some(name) = c
            .str(port.get("name"), &f("name"))
            .filter(|n| !n.is_empty())
        {
            for e in port_name_errors(name) {
                c.invalid_str(&f("name"), name, &e);
            }
            if !names.insert(name) {
                c.duplicate(&f("name"), &json!(name));
            }
        }
        if let Some(ip) = c
            .str(port.get("hostIP"), &f("hostIP"))
            .filter(|s| !s.is_empty())
            && !is_ip(ip)
        {
            c.invalid_str(&f("hostIP"), ip, IP_MSG);
        }
    }
}

fn validate_env(c: &mut Ctx, v: Option<&Value>, path: &str) {
    for (i, env) in c.items(v, path).iter().enumerate() {
        let ep = index(path, i);
        let Some(env) = c.obj_or_empty(Some(env), &ep) else {
            continue;
        };
        let f = |n: &str| child(&ep, n);
        if let Some(name) = c.required_str(env.get("name"), &f("name")) {
            for e in env_var_name_errors(name) {
                c.invalid_str(&f("name"), name, &e);
            }
        }
        let value = c.string(env.get("value"), &f("value"));
        let Some(from) = c.obj(env.get("valueFrom"), &f("valueFrom")) else {
            continue;
        };
        let fp = f("valueFrom");
        if !value.is_empty() {
            c.invalid_str(&fp, "", "may not be specified when `value` is not empty");
        }
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
            "fileKeyRef",
        ];
        let present = sources
            .iter()
            .filter(|s| from.get(**s).is_some_and(|x| !x.is_null()))
            .count();
        if present == 0 {
            c.invalid_str(
                &fp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            );
        } else if present > 1 {
            c.invalid_str(
                &fp,
                "",
                "may not have more than one field specified at a time",
            );
        }
        let rp = child(&fp, "fieldRef");
        if let Some(r) = c.obj(from.get("fieldRef"), &rp) {
            c.one_of(r.get("apiVersion"), &child(&rp, "apiVersion"), &["v1"]);
            if let Some(fpath) = c.required_str(r.get("fieldPath"), &child(&rp, "fieldPath")) {
                let subscript = ["metadata.labels['", "metadata.annotations['"]
                    .iter()
                    .any(|pre| {
                        fpath.starts_with(pre)
                            && fpath.ends_with("']")
                            && fpath.len() > pre.len() + 2
                    });
                if !subscript && !FIELD_REF_PATHS.contains(&fpath) {
                    c.not_supported(&child(&rp, "fieldPath"), fpath, FIELD_REF_PATHS);
                }
            }
        }
        let rp = child(&fp, "resourceFieldRef");
        if let Some(r) = c.obj(from.get("resourceFieldRef"), &rp) {
            if let Some(res) = c.required_str(r.get("resource"), &child(&rp, "resource"))
                && !RESOURCE_REF_NAMES.contains(&res)
                && !res.starts_with("limits.hugepages-")
                && !res.starts_with("requests.hugepages-")
            {
                c.not_supported(&child(&rp, "resource"), res, RESOURCE_REF_NAMES);
            }
            c.str(r.get("containerName"), &child(&rp, "containerName"));
            if let Some(d) = r.get("divisor").filter(|d| !d.is_null()) {
                validate_quantity(c, d, &child(&rp, "divisor"));
            }
        }
        for sel in ["configMapKeyRef", "secretKeyRef"] {
            let sp = child(&fp, sel);
            if let Some(s) = c.obj(from.get(sel), &sp) {
                c.required_str(s.get("key"), &child(&sp, "key"));
                c.str(s.get("name"), &child(&sp, "name"));
                c.bool(s.get("optional"), &child(&sp, "optional"));
            }
        }
    }
}

fn validate_env_from(c: &mut Ctx, v: Option<&Value>, path: &str) {
    for (i, src) in c.items(v, path).iter().enumerate() {
        let sp = index(path, i);
        let Some(src) = c.obj_or_empty(Some(src), &sp) else {
            continue;
        };
        if let Some(prefix) = c
            .str(src.get("prefix"), &child(&sp, "prefix"))
            .filter(|p| !p.is_empty())
        {
            for e in env_var_name_errors(prefix) {
                c.invalid_str(&child(&sp, "prefix"), prefix, &e);
            }
        }
        let refs = ["configMapRef", "secretRef"];
        let present: Vec<&str> = refs
            .iter()
            .copied()
            .filter(|r| src.get(*r).is_some_and(|x| !x.is_null()))
            .collect();
        match present.as_slice() {
            [] => c.invalid_str(
                &sp,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ),
            [_] => {}
            _ => c.invalid_str(
                &sp,
                "",
                "may not have more than one field specified at a time",
            ),
        }
        for r in present {
            let rp = child(&sp, r);
            if let Some(o) = c.obj(src.get(r), &rp) {
                c.str(o.get("name"), &child(&rp, "name"));
                c.bool(o.get("optional"), &child(&rp, "optional"));
            }
        }
    }
}

fn validate_mounts(c: &mut Ctx, v: Option<&Value>, path: &str, volumes: &HashSet<&str>) {
    let mut paths = HashSet::new();
    for (i, m) in c.items(v, path).iter().enumerate() {
        let mp = index(path, i);
        let Some(m) = c.obj_or_empty(Some(m), &mp) else {
            continue;
        };
        let f = |n: &str| child(&mp, n);
        if let Some(name) = c.required_str(m.get("name"), &f("name"))
            && !volumes.contains(name)
        {
            c.not_found(&f("name"), name);
        }
        if let Some(mount) = c.required_str(m.get("mountPath"), &f("mountPath"))
            && !paths.insert(mount)
        {
            c.invalid_str(&f("mountPath"), mount, "must be unique");
        }
        let sub = c.string(m.get("subPath"), &f("subPath"));
        if !sub.is_empty() {
            validate_local_path(c, sub, &f("subPath"));
        }
        let sub_expr = c.string(m.get("subPathExpr"), &f("subPathExpr"));
        if !sub.is_empty() && !sub_expr.is_empty() {
            c.invalid_str(
                &f("subPathExpr"),
                sub_expr,
                "subPathExpr and subPath are mutually exclusive",
            );
        }
        c.bool(m.get("readOnly"), &f("readOnly"));
        c.one_of(
            m.get("mountPropagation"),
            &f("mountPropagation"),
            &["None", "HostToContainer", "Bidirectional"],
        );
    }
}

/// Checks one quantity value; returns its milli-units when it is valid.
pub(crate) fn validate_quantity(c: &mut Ctx, v: &Value, path: &str) -> Option<(String, i128)> {
    let Some(text) = quantity_text(v) else {
        c.wrong_type(path, v, "string");
        return None;
    };
    match parse_milli(&text) {
        Err(QuantityError::Format) => {
            c.invalid_str(path, &text, QUANTITY_FORMAT_MSG);
            None
        }
        Err(QuantityError::TooLarge) => {
            c.invalid_str(path, &text, "quantity is too large");
            None
        }
        Ok(m) if m < 0 => {
            c.invalid_str(path, &text, "must be greater than or equal to 0");
            None
        }
        Ok(m) => Some((text, m)),
    }
}

/// Checks a resource list (`limits`, `requests`, `overhead`); returns the valid entries.
pub(crate) fn validate_resource_list<'a>(
    c: &mut Ctx,
    v: Option<&'a Value>,
    path: &str,
    container: bool,
) -> Vec<(&'a str, String, i128)> {
    let mut out = Vec::new();
    let Some(list) = c.obj(v, path) else {
        return out;
    };
    for (name, q) in list {
        let kp = key(path, name);
        for e in qualified_name_errors(name) {
            c.invalid_str(&kp, name, &e);
        }
        let standard = ["cpu", "memory", "ephemeral-storage"].contains(&name.as_str())
            || name.starts_with("hugepages-");
        if container && !name.contains('/') && !standard {
            c.invalid_str(&kp, name, "must be a standard resource for containers");
        }
        if let Some((text, m)) = validate_quantity(c, q, &kp) {
            out.push((name.as_str(), text, m));
        }
    }
    out
}

fn validate_resources(c: &mut Ctx, v: Option<&Value>, path: &str) {
    let Some(r) = c.obj(v, path) else { return };
    let limits = validate_resource_list(c, r.get("limits"), &child(path, "limits"), true);
    let requests = validate_resource_list(c, r.get("requests"), &child(path, "requests"), true);
    for (name, text, req) in &requests {
        if let Some((_, limit_text, limit)) = limits.iter().find(|l| l.0 == *name)
            && req > limit
        {
            c.invalid_str(
                &key(&child(path, "requests"), name),
                text,
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            );
        }
    }
    c.items(r.get("claims"), &child(path, "claims"));
}

fn validate_probe(c: &mut Ctx, pr: &Obj, path: &str, success_must_be_one: bool) {
    validate_handler(c, pr, path, &["exec", "httpGet", "tcpSocket", "grpc"]);
    let f = |n: &str| child(path, n);
    c.int_at_least(pr.get("initialDelaySeconds"), &f("initialDelaySeconds"), 0);
    for field in ["timeoutSeconds", "periodSeconds", "failureThreshold"] {
        c.int_at_least(pr.get(field), &f(field), 1);
    }
    if let Some(s) = c.int_at_least(pr.get("successThreshold"), &f("successThreshold"), 1)
        && success_must_be_one
        && s > 1
    {
        c.invalid_int(&f("successThreshold"), s, "must be 1");
    }
    if let Some(g) = c.int(
        pr.get("terminationGracePeriodSeconds"),
        &f("terminationGracePeriodSeconds"),
    ) && g < 1
    {
        c.invalid_int(
            &f("terminationGracePeriodSeconds"),
            g,
            "must be greater than 0",
        );
    }
}

/// A probe or lifecycle handler: exactly one of `kinds`, each well formed.
fn validate_handler(c: &mut Ctx, h: &Obj, path: &str, kinds: &[&str]) {
    let present: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| h.get(*k).is_some_and(|x| !x.is_null()))
        .collect();
    match present.as_slice() {
        [] => c.required(path, "must specify a handler type"),
        [_] => {}
        [_, second, ..] => c.forbidden(
            &child(path, second),
            "may not specify more than 1 handler type",
        ),
    }
    for kind in present {
        let kp = child(path, kind);
        let Some(a) = c.obj(h.get(kind), &kp) else {
            continue;
        };
        let f = |n: &str| child(&kp, n);
        match kind {
            "exec" => {
                let before = c.len();
                if c.str_list(a.get("command"), &f("command")).is_empty() && c.len() == before {
                    c.required(&f("command"), "");
                }
            }
            "httpGet" => {
                validate_port_num_or_name(c, a.get("port"), &f("port"));
                c.str(a.get("path"), &f("path"));
                c.str(a.get("host"), &f("host"));
                c.one_of(a.get("scheme"), &f("scheme"), &["HTTP", "HTTPS"]);
                for (i, hd) in c
                    .items(a.get("httpHeaders"), &f("httpHeaders"))
                    .iter()
                    .enumerate()
                {
                    let hp = index(&f("httpHeaders"), i);
                    if let Some(hd) = c.obj_or_empty(Some(hd), &hp) {
                        c.required_str(hd.get("name"), &child(&hp, "name"));
                        c.str(hd.get("value"), &child(&hp, "value"));
                    }
                }
            }
            "tcpSocket" => {
                validate_port_num_or_name(c, a.get("port"), &f("port"));
                c.str(a.get("host"), &f("host"));
            }
            "grpc" => {
                let before = c.len();
                match c.int(a.get("port"), &f("port")) {
                    None if c.len() == before => c.required(&f("port"), ""),
                    Some(p) if !(1..=65535).contains(&p) => {
                        c.invalid_int(&f("port"), p, PORT_RANGE_MSG)
                    }
                    _ => {}
                }
                c.str(a.get("service"), &f("service"));
            }
            "sleep" => {
                c.int_at_least(a.get("seconds"), &f("seconds"), 0);
            }
            _ => {}
        }
    }
}

/// A port given by number (1..65535) or by a container port name.
pub(crate) fn validate_port_num_or_name(c: &mut Ctx, v: Option<&Value>, path: &str) {
    let before = c.len();
    match c.int_or_str(v, path) {
        None if c.len() == before => c.required(path, ""),
        Some(IntOrStr::Int(n)) if !(1..=65535).contains(&n) => {
            c.invalid_int(path, n, PORT_RANGE_MSG)
        }
        Some(IntOrStr::Str(s)) => {
            for e in port_name_errors(s) {
                c.invalid_str(path, s, &e);
            }
        }
        _ => {}
    }
}

fn validate_tolerations(c: &mut Ctx, v: Option<&Value>, path: &str) {
    for (i, t) in c.items(v, path).iter().enumerate() {
        let tp = index(path, i);
        let Some(t) = c.obj_or_empty(Some(t), &tp) else {
            continue;
        };
        let f = |n: &str| child(&tp, n);
        let k = c.string(t.get("key"), &f("key"));
        if !k.is_empty() {
            for e in qualified_name_errors(k) {
                c.invalid_str(&f("key"), k, &e);
            }
        }
        let op = c.string(t.get("operator"), &f("operator"));
        let value = c.string(t.get("value"), &f("value"));
        if k.is_empty() && op != "Exists" {
            c.invalid_str(
                &f("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        match op {
            "" | "Equal" => {
                for e in super::names::label_value_errors(value) {
                    c.invalid_str(&f("value"), value, &e);
                }
            }
            "Exists" if !value.is_empty() => c.invalid_str(
                &f("value"),
                value,
                "value must be empty when `operator` is 'Exists'",
            ),
            "Exists" => {}
            other => c.not_supported(&f("operator"), other, &["Equal", "Exists"]),
        }
        let effect = c.one_of(
            t.get("effect"),
            &f("effect"),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        );
        if c.int(t.get("tolerationSeconds"), &f("tolerationSeconds"))
            .is_some()
            && effect.as_deref() != Some("NoExecute")
        {
            c.invalid_str(
                &f("effect"),
                effect.as_deref().unwrap_or(""),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
    }
}

fn validate_spread_constraints(c: &mut Ctx, v: Option<&Value>, path: &str) {
    for (i, t) in c.items(v, path).iter().enumerate() {
        let tp = index(path, i);
        let Some(t) = c.obj_or_empty(Some(t), &tp) else {
            continue;
        };
        let f = |n: &str| child(&tp, n);
        let before = c.len();
        match c.int(t.get("maxSkew"), &f("maxSkew")) {
            None if c.len() == before => c.required(&f("maxSkew"), ""),
            Some(s) if s < 1 => c.invalid_int(&f("maxSkew"), s, "must be greater than zero"),
            _ => {}
        }
        if let Some(k) = c.required_str(t.get("topologyKey"), &f("topologyKey")) {
            for e in qualified_name_errors(k) {
                c.invalid_str(&f("topologyKey"), k, &e);
            }
        }
        let before = c.len();
        if c.one_of(
            t.get("whenUnsatisfiable"),
            &f("whenUnsatisfiable"),
            &["DoNotSchedule", "ScheduleAnyway"],
        )
        .is_none()
            && c.len() == before
        {
            c.required(&f("whenUnsatisfiable"), "");
        }
        if let Some(sel) = c.obj(t.get("labelSelector"), &f("labelSelector")) {
            super::meta::validate_label_selector(c, sel, &f("labelSelector"));
        }
        if let Some(m) = c.int(t.get("minDomains"), &f("minDomains"))
            && m < 1
        {
            c.invalid_int(&f("minDomains"), m, "must be greater than 0");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Update

/// The rules for updating a Pod from `old` to `new` (both defaulted).
pub(crate) fn validate_pod_update(c: &mut Ctx, old: &Value, new: &Value) {
    let mut old = old.clone();
    default_pod(&mut old);
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
    let (Some(os), Some(ns)) = (old_spec.as_object(), new_spec.as_object()) else {
        if old_spec != new_spec {
            c.forbidden("spec", POD_UPDATE_MSG);
        }
        return;
    };
    // What may change is copied over from the old spec; any other difference is refused.
    let mut patched = ns.clone();
    for list in ["containers", "initContainers"] {
        let olds = os.get(list).and_then(Value::as_array);
        let news = patched.get_mut(list).and_then(Value::as_array_mut);
        if let (Some(olds), Some(news)) = (olds, news)
            && olds.len() == news.len()
        {
            for (o, n) in olds.iter().zip(news.iter_mut()) {
                if let (Some(o), Some(n)) = (o.as_object(), n.as_object_mut()) {
                    match o.get("image") {
                        Some(img) => n.insert("image".into(), img.clone()),
                        None => n.remove("image"),
                    };
                }
            }
        }
    }
    let deadline = |m: &Obj| {
        m.get("activeDeadlineSeconds")
            .filter(|v| !v.is_null())
            .cloned()
    };
    match (deadline(os), deadline(ns)) {
        (Some(_), None) => c.forbidden(
            "spec.activeDeadlineSeconds",
            "must not update from a positive integer to nil value",
        ),
        (Some(o), Some(n)) => {
            if let (Some(o), Some(n)) = (o.as_i64(), n.as_i64())
                && n > o
            {
                c.invalid_int(
                    "spec.activeDeadlineSeconds",
                    n,
                    "must be less than or equal to previous value",
                );
            }
        }
        _ => {}
    }
    for field in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
        match os.get(field) {
            Some(v) => patched.insert(field.into(), v.clone()),
            None => patched.remove(field),
        };
    }
    // Tolerations: every old one must still be there (its tolerationSeconds may change).
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let old_tol: Vec<Value> = os
        .get("tolerations")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(strip).collect())
        .unwrap_or_default();
    let new_tol: Option<Vec<Value>> = match ns.get("tolerations") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(a)) => Some(a.iter().map(strip).collect()),
        Some(_) => None,
    };
    if let Some(new_tol) = new_tol {
        if old_tol.iter().all(|t| new_tol.contains(t)) {
            match os.get("tolerations") {
                Some(v) => patched.insert("tolerations".into(), v.clone()),
                None => patched.remove("tolerations"),
            };
        } else {
            c.forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            );
            return;
        }
    }
    // Scheduling gates may only be removed.
    let gates = |m: &Obj| {
        m.get("schedulingGates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (old_gates, new_gates) = (gates(os), gates(ns));
    if new_gates.iter().all(|g| old_gates.contains(g))
        && ns.get("schedulingGates").is_none_or(Value::is_array)
    {
        match os.get("schedulingGates") {
            Some(v) => patched.insert("schedulingGates".into(), v.clone()),
            None => patched.remove("schedulingGates"),
        };
    }
    if &patched != os {
        let mut changed: Vec<&str> = os
            .keys()
            .chain(patched.keys())
            .filter(|k| os.get(*k) != patched.get(*k))
            .map(String::as_str)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let list: Vec<String> = changed.iter().map(|k| format!("spec.{k}")).collect();
        c.forbidden(
            "spec",
            &format!("{POD_UPDATE_MSG}; changed: {}", list.join(", ")),
        );
    }
}
