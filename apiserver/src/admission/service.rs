//! Services: upstream's defaults (type, session affinity, port protocol and target port,
//! traffic policies, IP families), validation of the spec, and the immutable cluster IP.
//! Cluster IPs and node ports are allocated by the handler after admission.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::meta::validate_labels;
use super::names::{IP_MSG, PORT_RANGE_MSG, is_ip, label_error, port_name_errors, subdomain_error};
use super::util::{
    Ctx, IntOrStr, child, ensure_obj, get_str, index, objs_mut, set_default, set_default_str,
};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// Upstream's default ClientIP affinity timeout (3 hours).
const AFFINITY_TIMEOUT: i64 = 10_800;

/// Defaults a Service.
pub(crate) fn default_service(obj: &mut Value) {
    let Some(spec) = obj
        .as_object_mut()
        .and_then(|root| ensure_obj(root, "spec"))
    else {
        return;
    };
    set_default_str(spec, "type", "ClusterIP");
    set_default_str(spec, "sessionAffinity", "None");
    if get_str(spec, "sessionAffinity") == Some("ClientIP")
        && let Some(cfg) = ensure_obj(spec, "sessionAffinityConfig")
        && let Some(client) = ensure_obj(cfg, "clientIP")
    {
        set_default(client, "timeoutSeconds", json!(AFFINITY_TIMEOUT));
    }
    for port in objs_mut(spec, "ports") {
        set_default_str(port, "protocol", "TCP");
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(v) => v.as_i64() == Some(0),
        };
        if unset
            && let Some(p) = port
                .get("port")
                .filter(|p| p.is_i64() || p.is_u64())
                .cloned()
        {
            port.insert("targetPort".into(), p);
        }
    }
    let ty = get_str(spec, "type").unwrap_or("").to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", Value::Bool(true));
    }
    if ty != "ExternalName" {
        set_default_str(spec, "internalTrafficPolicy", "Cluster");
        set_default_str(spec, "ipFamilyPolicy", "SingleStack");
        let v6 = get_str(spec, "clusterIP")
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_ipv6());
        let families = spec.get("ipFamilies");
        if families.is_none_or(Value::is_null)
            || families
                .and_then(Value::as_array)
                .is_some_and(|a| a.is_empty())
        {
            spec.insert(
                "ipFamilies".into(),
                json!([if v6 { "IPv6" } else { "IPv4" }]),
            );
        }
    }
}

/// Validates a Service's spec.
pub(crate) fn validate_service(c: &mut Ctx, obj: &Value, create: bool) {
    let Some(spec) = c.obj_or_empty(obj.get("spec"), "spec") else {
        return;
    };
    let ty = c
        .one_of(spec.get("type"), "spec.type", TYPES)
        .unwrap_or_else(|| "ClusterIP".to_string());
    let cluster_ip = c.string(spec.get("clusterIP"), "spec.clusterIP");
    if !cluster_ip.is_empty() && cluster_ip != "None" && !is_ip(cluster_ip) {
        c.invalid_str("spec.clusterIP", cluster_ip, IP_MSG);
    }
    let ips = c.str_list(spec.get("clusterIPs"), "spec.clusterIPs");
    for (i, ip) in ips.iter().enumerate() {
        if *ip != "None" && !is_ip(ip) {
            c.invalid_str(&index("spec.clusterIPs", i), ip, IP_MSG);
        }
    }
    if let Some(first) = ips.first()
        && !cluster_ip.is_empty()
        && *first != cluster_ip
    {
        c.invalid_str("spec.clusterIPs[0]", first, "must match `spec.clusterIP`");
    }
    let headless = cluster_ip == "None";
    if headless && (ty == "NodePort" || ty == "LoadBalancer") {
        c.invalid_str(
            "spec.clusterIP",
            cluster_ip,
            "may not be set to 'None' for LoadBalancer or NodePort services",
        );
    }
    if ty == "ExternalName" {
        if let Some(name) = c.required_str(spec.get("externalName"), "spec.externalName")
            && let Some(e) = subdomain_error(name.strip_suffix('.').unwrap_or(name))
        {
            c.invalid_str("spec.externalName", name, &e);
        }
        if create && !cluster_ip.is_empty() {
            c.forbidden("spec.clusterIP", "may not be set for ExternalName services");
        }
    }

    let ports = c.items(spec.get("ports"), "spec.ports");
    if ports.is_empty()
        && !headless
        && ty != "ExternalName"
        && spec
            .get("ports")
            .is_none_or(|p| p.is_array() || p.is_null())
    {
        c.required("spec.ports", "");
    }
    let mut names = HashSet::new();
    let mut port_protocols = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        let Some(port) = c.obj_or_empty(Some(port), &pp) else {
            continue;
        };
        let f = |n: &str| child(&pp, n);
        let name = c.string(port.get("name"), &f("name"));
        if name.is_empty() {
            if ports.len() > 1
                && port
                    .get("name")
                    .is_none_or(|n| n.is_string() || n.is_null())
            {
                c.required(&f("name"), "");
            }
        } else {
            if let Some(e) = label_error(name) {
                c.invalid_str(&f("name"), name, &e);
            }
            if !names.insert(name) {
                c.duplicate(&f("name"), &json!(name));
            }
        }
        let before = c.len();
        let number = c.int(port.get("port"), &f("port"));
        match number {
            None if c.len() == before => c.required(&f("port"), ""),
            Some(n) if !(1..=65535).contains(&n) => c.invalid_int(&f("port"), n, PORT_RANGE_MSG),
            _ => {}
        }
        let protocol = c
            .one_of(port.get("protocol"), &f("protocol"), PROTOCOLS)
            .unwrap_or_else(|| "TCP".into());
        if let Some(n) = number
            && !port_protocols.insert((n, protocol.clone()))
        {
            c.duplicate(&pp, &json!({ "port": n, "protocol": protocol }));
        }
        match c.int_or_str(port.get("targetPort"), &f("targetPort")) {
            Some(IntOrStr::Int(0)) | None => {}
            Some(IntOrStr::Int(n)) if !(1..=65535).contains(&n) => {
                c.invalid_int(&f("targetPort"), n, PORT_RANGE_MSG)
            }
            Some(IntOrStr::Str(s)) if !s.is_empty() => {
                for e in port_name_errors(s) {
                    c.invalid_str(&f("targetPort"), s, &e);
                }
            }
            _ => {}
        }
        match c.int(port.get("nodePort"), &f("nodePort")) {
            Some(0) | None => {}
            Some(n) if !(1..=65535).contains(&n) => {
                c.invalid_int(&f("nodePort"), n, PORT_RANGE_MSG)
            }
            Some(n) => {
                if !node_ports.insert((n, protocol.clone())) {
                    c.duplicate(&f("nodePort"), &json!(n));
                }
            }
        }
        c.str(port.get("appProtocol"), &f("appProtocol"));
    }

    let affinity = c.one_of(
        spec.get("sessionAffinity"),
        "spec.sessionAffinity",
        &["ClientIP", "None"],
    );
    let cfg = c.obj(
        spec.get("sessionAffinityConfig"),
        "spec.sessionAffinityConfig",
    );
    match affinity.as_deref() {
        Some("ClientIP") => {
            let timeout = cfg
                .and_then(|cfg| c.obj(cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP"))
                .map(|ci| {
                    c.int(
                        ci.get("timeoutSeconds"),
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    )
                });
            if let Some(Some(t)) = timeout
                && !(1..=86_400).contains(&t)
            {
                c.invalid_int(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                );
            }
        }
        Some(_) if cfg.is_some() => c.forbidden(
            "spec.sessionAffinityConfig",
            "must not be set when session affinity is None",
        ),
        _ => {}
    }
    validate_labels(c, spec.get("selector"), "spec.selector");
    c.one_of(
        spec.get("externalTrafficPolicy"),
        "spec.externalTrafficPolicy",
        &["Cluster", "Local"],
    );
    c.one_of(
        spec.get("internalTrafficPolicy"),
        "spec.internalTrafficPolicy",
        &["Cluster", "Local"],
    );
    c.one_of(
        spec.get("ipFamilyPolicy"),
        "spec.ipFamilyPolicy",
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );
    let families = c.str_list(spec.get("ipFamilies"), "spec.ipFamilies");
    let mut seen = HashSet::new();
    for (i, fam) in families.iter().enumerate() {
        let fp = index("spec.ipFamilies", i);
        if !["IPv4", "IPv6"].contains(fam) {
            c.not_supported(&fp, fam, &["IPv4", "IPv6"]);
        } else if !seen.insert(*fam) {
            c.duplicate(&fp, &json!(fam));
        }
    }
    if families.len() > 2 {
        c.invalid(
            "spec.ipFamilies",
            spec.get("ipFamilies").unwrap_or(&Value::Null),
            "may specify no more than two IP families",
        );
    }
    for (i, ip) in c
        .str_list(spec.get("externalIPs"), "spec.externalIPs")
        .iter()
        .enumerate()
    {
        if !is_ip(ip) {
            c.invalid_str(&index("spec.externalIPs", i), ip, IP_MSG);
        }
    }
    if let Some(ip) = c
        .str(spec.get("loadBalancerIP"), "spec.loadBalancerIP")
        .filter(|s| !s.is_empty())
        && !is_ip(ip)
    {
        c.invalid_str("spec.loadBalancerIP", ip, IP_MSG);
    }
    c.str_list(
        spec.get("loadBalancerSourceRanges"),
        "spec.loadBalancerSourceRanges",
    );
    if let Some(h) = c.int(spec.get("healthCheckNodePort"), "spec.healthCheckNodePort")
        && !(0..=65535).contains(&h)
    {
        c.invalid_int("spec.healthCheckNodePort", h, PORT_RANGE_MSG);
    }
    for field in ["allocateLoadBalancerNodePorts", "publishNotReadyAddresses"] {
        c.bool(spec.get(field), &child("spec", field));
    }
    c.str(spec.get("loadBalancerClass"), "spec.loadBalancerClass");
}

/// The update rules of a Service: the cluster IP, once set, stays.
pub(crate) fn validate_service_update(c: &mut Ctx, old: &Value, new: &Value) {
    let ip = |v: &Value| {
        v.pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ty = |v: &Value| {
        v.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let (old_ip, new_ip) = (ip(old), ip(new));
    let external = ty(old) == "ExternalName" || ty(new) == "ExternalName";
    // An empty clusterIP on update keeps the old one (the allocator copies it over).
    if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip && !external {
        c.invalid_str("spec.clusterIP", &new_ip, "field is immutable");
    }
}
