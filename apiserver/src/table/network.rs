//! Services (`NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE`, wide `SELECTOR`), Endpoints
//! (`NAME ENDPOINTS AGE`) and EndpointSlices (`NAME ADDRESSTYPE PORTS ENDPOINTS AGE`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::format::{arr_at, at, host_port, int_at, labels, or, str_at, with_more};
use super::{AGE, Column, NAME, age_at, name, text};

/// How many addresses or ports a cell lists before `+ N more...`.
const MAX_LISTED: usize = 3;

/// Service columns.
pub(super) const SERVICE: &[Column] = &[
    NAME,
    Column::new(
        "Type",
        "string",
        "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName.",
    ),
    Column::new(
        "Cluster-IP",
        "string",
        "The virtual IP the service is reachable at inside the cluster.",
    ),
    Column::new(
        "External-IP",
        "string",
        "Addresses the service is reachable at from outside the cluster.",
    ),
    Column::new(
        "Port(s)",
        "string",
        "Service ports, with the node port after a colon where allocated.",
    ),
    AGE,
    Column::new(
        "Selector",
        "string",
        "Labels of the pods the service routes to.",
    )
    .wide(),
];

/// Service row.
pub(super) fn service(o: &Value, now: i64) -> Vec<Value> {
    let ty = or(str_at(o, &["spec", "type"]), "ClusterIP");
    let cluster_ip = arr_at(o, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| at(o, &["spec", "clusterIP"]).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let ports: Vec<String> = arr_at(o, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let proto = or(str_at(p, &["protocol"]), "TCP");
            match int_at(p, &["nodePort"]) {
                np if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        name(o),
        text(ty.clone()),
        text(cluster_ip),
        text(external_ip(o, &ty)),
        text(ports),
        age_at(o, now),
        text(labels(at(o, &["spec", "selector"]))),
    ]
}

/// The EXTERNAL-IP cell: `spec.externalIPs`, plus the load balancer's ingress points for a
/// LoadBalancer (`<pending>` until it has some), the DNS name of an ExternalName service.
fn external_ip(o: &Value, ty: &str) -> String {
    let external: Vec<&str> = arr_at(o, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            // Ingress points (IP, else hostname), sorted and once each.
            let ingress: BTreeSet<&str> = arr_at(o, &["status", "loadBalancer", "ingress"])
                .iter()
                .filter_map(|i| {
                    [str_at(i, &["ip"]), str_at(i, &["hostname"])]
                        .into_iter()
                        .find(|s| !s.is_empty())
                })
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(o, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".into(),
    }
}

/// Endpoints columns.
pub(super) const ENDPOINTS: &[Column] = &[
    NAME,
    Column::new(
        "Endpoints",
        "string",
        "Ready addresses with their ports, the first few of them.",
    ),
    AGE,
];

/// Endpoints row: `ip:port` per address and port of every subset (bare IPs for a subset
/// without ports), the first three then `+ N more...`; `<none>` without subsets.
pub(super) fn endpoints(o: &Value, now: i64) -> Vec<Value> {
    let subsets = arr_at(o, &["subsets"]);
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut count = 0usize;
        for ss in subsets {
            let addresses = arr_at(ss, &["addresses"]);
            let ports = arr_at(ss, &["ports"]);
            if ports.is_empty() {
                count += addresses.len();
                list.extend(
                    addresses
                        .iter()
                        .take(MAX_LISTED.saturating_sub(list.len()))
                        .map(|a| str_at(a, &["ip"]).to_string()),
                );
                continue;
            }
            for p in ports {
                count += addresses.len();
                let port = int_at(p, &["port"]);
                list.extend(
                    addresses
                        .iter()
                        .take(MAX_LISTED.saturating_sub(list.len()))
                        .map(|a| host_port(str_at(a, &["ip"]), port)),
                );
            }
        }
        with_more(&list, count, MAX_LISTED)
    };
    vec![name(o), text(cell), age_at(o, now)]
}

/// EndpointSlice columns.
pub(super) const ENDPOINTSLICE: &[Column] = &[
    NAME,
    Column::new(
        "AddressType",
        "string",
        "The type of the slice's addresses: IPv4, IPv6 or FQDN.",
    ),
    Column::new(
        "Ports",
        "string",
        "The slice's ports, the first few of them.",
    ),
    Column::new(
        "Endpoints",
        "string",
        "The slice's endpoint addresses, the first few of them.",
    ),
    AGE,
];

/// EndpointSlice row.
pub(super) fn endpointslice(o: &Value, now: i64) -> Vec<Value> {
    let ports: Vec<String> = arr_at(o, &["ports"])
        .iter()
        .map(|p| match at(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => match at(p, &["name"]).and_then(Value::as_str) {
                Some(n) => n.to_string(),
                None => "*".into(),
            },
        })
        .collect();
    let addresses: Vec<String> = arr_at(o, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    let unset_if_empty = |s: String| if s.is_empty() { "<unset>".into() } else { s };
    vec![
        name(o),
        text(str_at(o, &["addressType"])),
        text(unset_if_empty(with_more(&ports, ports.len(), MAX_LISTED))),
        text(unset_if_empty(with_more(
            &addresses,
            addresses.len(),
            MAX_LISTED,
        ))),
        age_at(o, now),
    ]
}
