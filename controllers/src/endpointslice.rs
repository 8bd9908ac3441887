//! The EndpointSlice controller (and the legacy Endpoints controller): which pods back a
//! Service, as `discovery.k8s.io/v1` EndpointSlices and as a `v1` Endpoints object.
//!
//! [`desired`] turns a Service and the pods of its namespace into the slices that should
//! exist, packed from scratch; [`plan`] compares them with the slices that do exist and
//! reuses those as upstream's reconciler does, so that the API sees as little churn as
//! possible: slices whose endpoints and labels are unchanged are left alone, new endpoints
//! go first into slices that are being rewritten anyway, then into the fullest unchanged
//! slice that can take all of them, and only then into new slices.
//!
//! Behaviour follows kube-controller-manager:
//! - Services without a selector (an empty selector counts as none, as it does after a
//!   round trip through storage) and `ExternalName` Services are not managed here: both
//!   functions return nothing and existing slices are left as they are.
//! - A pod is an endpoint when it matches the selector, has an IPv4 address and is not
//!   terminal (`Succeeded`/`Failed`). Terminating pods stay in slices with
//!   `terminating=true`, `serving` = the pod's Ready condition and `ready=false` (unless the
//!   Service sets `publishNotReadyAddresses`, which makes every endpoint ready).
//! - Ports are resolved per pod: a named `targetPort` is looked up among the pod's container
//!   ports (and restartable init containers, i.e. sidecars) with the same protocol; a
//!   service port that a pod does not expose is left out for that pod, so pods with
//!   different resolved port sets land in different slices.
//! - A slice holds at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints. A Service with no
//!   endpoints at all gets one empty placeholder slice.
//! - Only `IPv4` slices are produced; pods with only IPv6 addresses are skipped.
//! - Zones, topology hints and the `last-change-trigger-time` annotation are not set.
//!
//! The legacy [`endpoints`] object follows the Endpoints controller: ready pods under
//! `addresses`, not-ready ones under `notReadyAddresses`, terminating pods left out unless
//! `publishNotReadyAddresses` is set, subsets grouped by port set, at most
//! [`MAX_ENDPOINTS_ADDRESSES`] addresses.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CoreEndpointPort, EndpointSubset, Endpoints, ObjectReference,
    Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubeutil::selector::Labels;

use crate::podutil::{is_pod_ready as pod_ready, is_pod_terminal as pod_terminal};

/// Most endpoints one slice carries (upstream's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Most addresses (ready and not ready) a legacy Endpoints object carries.
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;
/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value for [`LABEL_MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label set (empty) on slices and Endpoints of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Annotation set on an Endpoints object whose addresses were cut to the capacity.
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The only address type produced.
pub const ADDRESS_TYPE_IPV4: &str = "IPv4";

/// What to write so that the existing slices match the desired ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlicePlan {
    /// New slices (`metadata.generateName` is `<service>-`; no name).
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new endpoints or labels (name and resourceVersion kept).
    pub update: Vec<EndpointSlice>,
    /// Names of existing slices to delete.
    pub delete: Vec<String>,
}

impl SlicePlan {
    /// True when nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

// ------------------------------------------------------------------ pod helpers

fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str());
    status
        .pod_ip
        .as_deref()
        .into_iter()
        .chain(listed)
        .find(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(str::to_string)
}

// ------------------------------------------------------------------ service helpers

/// Whether this controller manages the Service's endpoints: it has a non-empty selector
/// and is not an `ExternalName` Service.
pub fn manages(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() != Some("ExternalName")
        && spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    if pod.metadata.namespace != svc.metadata.namespace {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    selector
        .iter()
        .all(|(k, v)| labels.label(k) == Some(v.as_str()))
}

fn headless(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

fn service_ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[])
}

fn protocol(p: Option<&str>) -> &str {
    p.unwrap_or("TCP")
}

/// The container port a service port reaches on a pod: a number as it is (unset means the
/// service port), a name looked up among the pod's containers and sidecar init containers
/// with the same protocol.
fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                // A numeric string is a number, as the apiserver would have read it.
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            let want = protocol(sp.protocol.as_deref());
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol(p.protocol.as_deref()) == want
                })
                .map(|p| p.container_port)
        }
    }
}

fn owner_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref().unwrap_or_default();
    slice.metadata.owner_references.iter().flatten().any(|r| {
        r.kind == "Service" && r.api_version == "v1" && r.controller == Some(true) && r.uid == uid
    })
}

fn reserved_label(key: &str) -> bool {
    matches!(key, LABEL_SERVICE_NAME | LABEL_MANAGED_BY | LABEL_HEADLESS)
}

/// The labels every slice of the Service carries: the Service's own labels (minus the
/// reserved keys), the headless marker when it has no cluster IP, and the two reserved
/// labels.
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

fn new_slice(svc: &Service, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                svc.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![owner_ref(svc)]),
            ..Default::default()
        },
        address_type: ADDRESS_TYPE_IPV4.into(),
        endpoints,
        ports: Some(ports),
    }
}

// ------------------------------------------------------------------ endpoints and ports

/// The slice ports a pod exposes for the Service, in service-port order.
fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    service_ports(svc)
        .iter()
        .filter_map(|sp| {
            find_port(pod, sp).map(|port| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol(sp.protocol.as_deref()).to_string()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// Order-independent identity of a port set (slices with equal keys are interchangeable).
type PortKey = Vec<(String, i32, String, String)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                protocol(p.protocol.as_deref()).to_string(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// Identity of an endpoint across re-plans: the pod it points at and its address.
type EpKey = (String, String, String);

fn ep_key(ep: &Endpoint) -> EpKey {
    let target = ep.target_ref.as_ref();
    (
        target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        target.and_then(|t| t.name.clone()).unwrap_or_default(),
        ep.addresses.first().cloned().unwrap_or_default(),
    )
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

fn hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.is_some()
        && spec.subdomain == svc.metadata.name
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| host.to_string())
}

fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

fn pod_endpoint(svc: &Service, pod: &Pod, ip: String) -> Endpoint {
    let serving = pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready(svc) || (serving && !terminating);
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(svc, pod),
        node_name: node_name(pod),
        target_ref: Some(target_ref(pod)),
        ..Default::default()
    }
}

/// The Service's pods that belong in slices, sorted by name.
fn candidate_pods<'a>(svc: &Service, pods: &'a [Pod]) -> Vec<(&'a Pod, String)> {
    let mut out: Vec<(&Pod, String)> = pods
        .iter()
        .filter(|p| selects(svc, p) && !pod_terminal(p))
        .filter_map(|p| pod_ipv4(p).map(|ip| (p, ip)))
        .collect();
    out.sort_by(|a, b| a.0.metadata.name.cmp(&b.0.metadata.name));
    out
}

/// Desired endpoints grouped by port set: key -> (ports in service order, endpoints).
type Groups = BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<EpKey, Endpoint>)>;

fn desired_groups(svc: &Service, pods: &[Pod]) -> Groups {
    let mut groups = Groups::new();
    for (pod, ip) in candidate_pods(svc, pods) {
        let ports = pod_ports(svc, pod);
        let ep = pod_endpoint(svc, pod, ip);
        let entry = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        entry.1.insert(ep_key(&ep), ep);
    }
    groups
}

/// The slices the Service should have, packed from scratch: one group of slices per
/// distinct resolved port set, [`MAX_ENDPOINTS_PER_SLICE`] endpoints each, endpoints in pod
/// name order; one empty placeholder slice when there are no endpoints. Empty for
/// Services this controller does not manage (see [`manages`]).
pub fn desired(svc: &Service, pods: &[Pod]) -> Vec<EndpointSlice> {
    if !manages(svc) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (_, (ports, eps)) in desired_groups(svc, pods) {
        let eps: Vec<Endpoint> = eps.into_values().collect();
        for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(new_slice(svc, ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        out.push(new_slice(svc, Vec::new(), Vec::new()));
    }
    out
}

// ------------------------------------------------------------------ planning

/// Regroups desired slices (as [`desired`] builds them) by port set.
fn regroup(desired: &[EndpointSlice]) -> Groups {
    let mut groups = Groups::new();
    for slice in desired.iter().filter(|s| !s.endpoints.is_empty()) {
        let ports = slice.ports.clone().unwrap_or_default();
        let entry = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        for ep in &slice.endpoints {
            entry.1.insert(ep_key(ep), ep.clone());
        }
    }
    groups
}

fn is_placeholder(slice: &EndpointSlice) -> bool {
    slice.endpoints.is_empty() && slice.ports.as_ref().is_none_or(Vec::is_empty)
}

/// Moves endpoints from the front of `want` into `slice` until it is full.
fn fill(slice: &mut EndpointSlice, want: &mut BTreeMap<EpKey, Endpoint>) {
    while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
        let Some((_, ep)) = want.pop_first() else {
            break;
        };
        slice.endpoints.push(ep);
    }
}

/// Reconciles the existing slices of one port set with that set's desired endpoints.
fn plan_group(
    svc: &Service,
    labels: &BTreeMap<String, String>,
    ports: &[EndpointPort],
    existing: Vec<&EndpointSlice>,
    mut want: BTreeMap<EpKey, Endpoint>,
    plan: &mut SlicePlan,
) {
    let mut updating: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<&EndpointSlice> = Vec::new();

    // 1. Keep what is still wanted in each slice, refreshed; drop the rest.
    for slice in existing {
        let mut changed = false;
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        for ep in &slice.endpoints {
            match want.remove(&ep_key(ep)) {
                Some(new) => {
                    changed |= new != *ep;
                    kept.push(new);
                }
                None => changed = true,
            }
        }
        let labels_changed = slice.metadata.labels.as_ref() != Some(labels);
        if changed && kept.is_empty() {
            // It lost every endpoint. (A slice that was already empty stays, unchanged,
            // and can be refilled below, as upstream.)
            plan.delete
                .push(slice.metadata.name.clone().unwrap_or_default());
        } else if changed || labels_changed {
            let mut s = slice.clone();
            s.endpoints = kept;
            s.metadata.labels = Some(labels.clone());
            updating.push(s);
        } else {
            unchanged.push(slice);
        }
    }

    // 2. Top up the slices that are being written anyway, fullest first.
    updating.sort_by_key(|s| Reverse(s.endpoints.len()));
    for s in &mut updating {
        fill(s, &mut want);
    }

    // 3. Put the rest into the fullest unchanged slice that can take all of it.
    if !want.is_empty() {
        unchanged.sort_by_key(|s| Reverse(s.endpoints.len()));
        if let Some(slice) = unchanged
            .iter()
            .find(|s| s.endpoints.len() + want.len() <= MAX_ENDPOINTS_PER_SLICE)
        {
            let mut s = (*slice).clone();
            s.metadata.labels = Some(labels.clone());
            fill(&mut s, &mut want);
            updating.push(s);
        }
    }

    // 4. New slices for whatever is left.
    while !want.is_empty() {
        let mut s = new_slice(svc, ports.to_vec(), Vec::new());
        fill(&mut s, &mut want);
        plan.create.push(s);
    }
    plan.update.extend(updating);
}

/// Plans the writes that turn `existing` (the slices labelled with the Service's name and
/// managed by this controller) into `desired` (from [`desired`]), reusing existing slices.
///
/// Existing slices that are being deleted are ignored; slices that lack this controller's
/// labels are not ours and ignored; slices not controlled by the Service (by uid) or of
/// another address type are deleted. Slices whose endpoints and labels are already right
/// are not touched. When nothing else would remain, one empty placeholder slice is kept
/// (or created).
pub fn plan(svc: &Service, desired: &[EndpointSlice], existing: &[EndpointSlice]) -> SlicePlan {
    let mut plan = SlicePlan::default();
    if !manages(svc) {
        return plan;
    }
    let labels = slice_labels(svc);
    let ours = existing.iter().filter(|s| {
        let l = s.metadata.labels.as_ref();
        s.metadata.deletion_timestamp.is_none()
            && l.and_then(|l| l.get(LABEL_MANAGED_BY)).map(String::as_str) == Some(CONTROLLER_NAME)
            && l.and_then(|l| l.get(LABEL_SERVICE_NAME)) == svc.metadata.name.as_ref()
    });
    let mut by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut considered = 0usize;
    for slice in ours {
        considered += 1;
        if slice.address_type != ADDRESS_TYPE_IPV4 || !owned_by(slice, svc) {
            plan.delete
                .push(slice.metadata.name.clone().unwrap_or_default());
            continue;
        }
        by_ports
            .entry(port_key(slice.ports.as_deref().unwrap_or(&[])))
            .or_default()
            .push(slice);
    }
    for slices in by_ports.values_mut() {
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }

    let groups = regroup(desired);
    for (key, (ports, want)) in groups {
        let existing = by_ports.remove(&key).unwrap_or_default();
        plan_group(svc, &labels, &ports, existing, want, &mut plan);
    }
    // Port sets no longer wanted at all.
    let mut leftover: Vec<&EndpointSlice> = by_ports.into_values().flatten().collect();
    leftover.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut placeholder_kept = false;
    let all_deleted = plan.update.is_empty()
        && plan.create.is_empty()
        && considered == plan.delete.len() + leftover.len();
    if all_deleted {
        // Nothing would remain: keep one existing placeholder, or create one.
        if let Some(i) = leftover.iter().position(|s| is_placeholder(s)) {
            let keep = leftover.remove(i);
            if keep.metadata.labels.as_ref() != Some(&labels) {
                let mut s = keep.clone();
                s.metadata.labels = Some(labels.clone());
                plan.update.push(s);
            }
            placeholder_kept = true;
        }
    }
    plan.delete.extend(
        leftover
            .iter()
            .map(|s| s.metadata.name.clone().unwrap_or_default()),
    );
    if all_deleted && !placeholder_kept {
        plan.create.push(new_slice(svc, Vec::new(), Vec::new()));
    }
    plan
}

// ------------------------------------------------------------------ legacy Endpoints

fn endpoint_address(svc: &Service, pod: &Pod, ip: String) -> EndpointAddress {
    EndpointAddress {
        ip,
        hostname: hostname(svc, pod),
        node_name: node_name(pod),
        target_ref: Some(target_ref(pod)),
    }
}

fn address_order(a: &EndpointAddress, b: &EndpointAddress) -> std::cmp::Ordering {
    let ip = |x: &EndpointAddress| x.ip.parse::<Ipv4Addr>().ok();
    let uid = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|t| t.uid.clone());
    (ip(a), &a.ip, uid(a)).cmp(&(ip(b), &b.ip, uid(b)))
}

/// The legacy Endpoints object for the Service (named after it, with the Service's labels
/// and the headless marker), or `None` for Services this controller does not manage.
///
/// Pods are included as the Endpoints controller does: terminating pods only with
/// `publishNotReadyAddresses`; ready pods (or all, with `publishNotReadyAddresses`) as
/// `addresses`, the others as `notReadyAddresses`; one subset per distinct resolved port
/// set (a headless Service without ports gets port-less subsets). Past
/// [`MAX_ENDPOINTS_ADDRESSES`] addresses the list is cut (ready addresses kept first) and
/// the object is annotated `endpoints.kubernetes.io/over-capacity: truncated`.
pub fn endpoints(svc: &Service, pods: &[Pod]) -> Option<Endpoints> {
    if !manages(svc) {
        return None;
    }
    let tolerate = publish_not_ready(svc);
    let no_ports = service_ports(svc).is_empty();
    // port key -> (ports, ready addresses, not-ready addresses)
    type Subset = (
        Vec<CoreEndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut subsets: BTreeMap<PortKey, Subset> = BTreeMap::new();
    for (pod, ip) in candidate_pods(svc, pods) {
        if !tolerate && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ports = pod_ports(svc, pod);
        if ports.is_empty() && !(no_ports && headless(svc)) {
            continue;
        }
        let core_ports: Vec<CoreEndpointPort> = ports
            .iter()
            .map(|p| CoreEndpointPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port.unwrap_or(0),
                protocol: p.protocol.clone(),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let entry = subsets
            .entry(port_key(&ports))
            .or_insert_with(|| (core_ports, Vec::new(), Vec::new()));
        let addr = endpoint_address(svc, pod, ip);
        if tolerate || pod_ready(pod) {
            entry.1.push(addr);
        } else {
            entry.2.push(addr);
        }
    }

    // Capacity: keep ready addresses first, subset by subset.
    let total: usize = subsets.values().map(|s| s.1.len() + s.2.len()).sum();
    let truncated = total > MAX_ENDPOINTS_ADDRESSES;
    if truncated {
        let mut budget = MAX_ENDPOINTS_ADDRESSES;
        for s in subsets.values_mut() {
            s.1.truncate(budget);
            budget -= s.1.len();
        }
        for s in subsets.values_mut() {
            s.2.truncate(budget);
            budget -= s.2.len();
        }
    }

    let subsets: Vec<EndpointSubset> = subsets
        .into_values()
        .filter(|(_, ready, not_ready)| !ready.is_empty() || !not_ready.is_empty())
        .map(|(mut ports, mut ready, mut not_ready)| {
            ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
            ready.sort_by(address_order);
            not_ready.sort_by(address_order);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();

    let mut labels: BTreeMap<String, String> = svc.metadata.labels.clone().unwrap_or_default();
    if headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    let annotations = truncated.then(|| {
        BTreeMap::from([(
            ANNOTATION_OVER_CAPACITY.to_string(),
            "truncated".to_string(),
        )])
    });
    Some(Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations,
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// What to write for the legacy Endpoints object.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointsAction {
    /// Nothing: the existing object already says this.
    None,
    /// Create the object.
    Create(Endpoints),
    /// Replace the existing object with this one (its metadata kept, so the write carries
    /// the resourceVersion it was read at).
    Update(Endpoints),
}

/// Compares a desired Endpoints object (from [`endpoints`]) with the existing one:
/// subsets, labels and the over-capacity annotation. Other annotations on the existing
/// object are kept.
pub fn plan_endpoints(desired: Endpoints, existing: Option<&Endpoints>) -> EndpointsAction {
    let Some(cur) = existing else {
        return EndpointsAction::Create(desired);
    };
    let norm = |s: &Option<Vec<EndpointSubset>>| s.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let labels = |m: &ObjectMeta| m.labels.clone().unwrap_or_default();
    let over = |m: &ObjectMeta| {
        m.annotations
            .as_ref()
            .unwrap_or(&empty)
            .get(ANNOTATION_OVER_CAPACITY)
            .cloned()
    };
    if norm(&cur.subsets) == norm(&desired.subsets)
        && labels(&cur.metadata) == labels(&desired.metadata)
        && over(&cur.metadata) == over(&desired.metadata)
    {
        return EndpointsAction::None;
    }
    let over_capacity = over(&desired.metadata);
    let mut out = cur.clone();
    out.subsets = desired.subsets;
    out.metadata.labels = desired.metadata.labels;
    let mut annotations = cur.metadata.annotations.clone().unwrap_or_default();
    match over_capacity {
        Some(v) => {
            annotations.insert(ANNOTATION_OVER_CAPACITY.into(), v);
        }
        None => {
            annotations.remove(ANNOTATION_OVER_CAPACITY);
        }
    }
    out.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    EndpointsAction::Update(out)
}
