//! The smaller core and discovery kinds: Namespace (finalizer, phase, the name label),
//! Endpoints and EndpointSlice (port protocols, address type), PersistentVolume and
//! PersistentVolumeClaim (volume mode, reclaim policy, phase).

use serde_json::{Value, json};

use super::names::{
    IP_MSG, PORT_RANGE_MSG, is_ip, label_error, qualified_name_errors, subdomain_error,
};
use super::pod::{quantities_to_strings, validate_resource_list};
use super::util::{
    Ctx, child, ensure_obj, get_str, index, obj_mut, objs_mut, set_default, set_default_str,
};

/// The label upstream puts on every Namespace, holding its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Defaults a Namespace.
pub(crate) fn default_namespace(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if let Some(spec) = ensure_obj(root, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(root, "status") {
        set_default_str(status, "phase", "Active");
    }
    let Some(meta) = ensure_obj(root, "metadata") else {
        return;
    };
    let Some(name) = get_str(meta, "name")
        .filter(|n| !n.is_empty())
        .map(str::to_string)
    else {
        return;
    };
    if let Some(labels) = ensure_obj(meta, "labels") {
        labels.insert(NAMESPACE_NAME_LABEL.into(), Value::String(name));
    }
}

/// Validates a Namespace's spec.
pub(crate) fn validate_namespace(c: &mut Ctx, obj: &Value) {
    let Some(spec) = c.obj_or_empty(obj.get("spec"), "spec") else {
        return;
    };
    for (i, f) in c
        .str_list(spec.get("finalizers"), "spec.finalizers")
        .into_iter()
        .enumerate()
    {
        let fp = index("spec.finalizers", i);
        let errs = qualified_name_errors(f);
        for e in &errs {
            c.invalid_str(&fp, f, e);
        }
        if errs.is_empty() && !f.contains('/') && f != "kubernetes" {
            c.invalid_str(
                &fp,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
    if let Some(status) = c.obj(obj.get("status"), "status") {
        c.one_of(
            status.get("phase"),
            "status.phase",
            &["Active", "Terminating"],
        );
    }
}

/// Defaults Endpoints: port protocols.
pub(crate) fn default_endpoints(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    for subset in objs_mut(root, "subsets") {
        for port in objs_mut(subset, "ports") {
            set_default_str(port, "protocol", "TCP");
        }
    }
}

/// Validates Endpoints subsets.
pub(crate) fn validate_endpoints(c: &mut Ctx, obj: &Value) {
    for (i, subset) in c.items(obj.get("subsets"), "subsets").iter().enumerate() {
        let sp = index("subsets", i);
        let Some(subset) = c.obj_or_empty(Some(subset), &sp) else {
            continue;
        };
        for list in ["addresses", "notReadyAddresses"] {
            let lp = child(&sp, list);
            for (j, a) in c.items(subset.get(list), &lp).iter().enumerate() {
                let ap = index(&lp, j);
                let Some(a) = c.obj_or_empty(Some(a), &ap) else {
                    continue;
                };
                if let Some(ip) = c.required_str(a.get("ip"), &child(&ap, "ip"))
                    && !is_ip(ip)
                {
                    c.invalid_str(&child(&ap, "ip"), ip, IP_MSG);
                }
                c.str(a.get("nodeName"), &child(&ap, "nodeName"));
                c.obj(a.get("targetRef"), &child(&ap, "targetRef"));
            }
        }
        validate_ports(c, subset.get("ports"), &child(&sp, "ports"), false);
    }
}

fn validate_ports(c: &mut Ctx, v: Option<&Value>, path: &str, zero_ok: bool) {
    for (i, port) in c.items(v, path).iter().enumerate() {
        let pp = index(path, i);
        let Some(port) = c.obj_or_empty(Some(port), &pp) else {
            continue;
        };
        let f = |n: &str| child(&pp, n);
        if let Some(name) = c
            .str(port.get("name"), &f("name"))
            .filter(|n| !n.is_empty())
            && let Some(e) = label_error(name)
        {
            c.invalid_str(&f("name"), name, &e);
        }
        match c.int(port.get("port"), &f("port")) {
            Some(0) if zero_ok => {}
            Some(n) if !(1..=65535).contains(&n) => c.invalid_int(&f("port"), n, PORT_RANGE_MSG),
            _ => {}
        }
        c.one_of(
            port.get("protocol"),
            &f("protocol"),
            &["SCTP", "TCP", "UDP"],
        );
        c.str(port.get("appProtocol"), &f("appProtocol"));
    }
}

/// Defaults an EndpointSlice: port names and protocols.
pub(crate) fn default_endpoint_slice(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    for port in objs_mut(root, "ports") {
        set_default(port, "name", json!(""));
        set_default_str(port, "protocol", "TCP");
    }
}

const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];

/// Validates an EndpointSlice.
pub(crate) fn validate_endpoint_slice(c: &mut Ctx, obj: &Value) {
    let before = c.len();
    let address_type = c.one_of(obj.get("addressType"), "addressType", ADDRESS_TYPES);
    if address_type.is_none() && c.len() == before {
        c.required("addressType", "");
    }
    for (i, ep) in c
        .items(obj.get("endpoints"), "endpoints")
        .iter()
        .enumerate()
    {
        let ep_path = index("endpoints", i);
        let Some(ep) = c.obj_or_empty(Some(ep), &ep_path) else {
            continue;
        };
        let ap = child(&ep_path, "addresses");
        let addresses = c.required_items(ep.get("addresses"), &ap);
        if addresses.len() > 100 {
            c.invalid(
                &ap,
                &json!(addresses.len()),
                "must have at most 100 addresses",
            );
        }
        for (j, a) in addresses.iter().enumerate() {
            let Some(a) = c.str(Some(a), &index(&ap, j)) else {
                continue;
            };
            let bad = match address_type.as_deref() {
                Some("IPv4") => a.parse::<std::net::Ipv4Addr>().is_err(),
                Some("IPv6") => a.parse::<std::net::Ipv6Addr>().is_err(),
                Some("FQDN") => subdomain_error(a).is_some(),
                _ => false,
            };
            if bad {
                let msg = match address_type.as_deref() {
                    Some("IPv4") => "must be a valid IPv4 address".to_string(),
                    Some("IPv6") => "must be a valid IPv6 address".to_string(),
                    _ => subdomain_error(a).unwrap_or_default(),
                };
                c.invalid_str(&index(&ap, j), a, &msg);
            }
        }
        if let Some(cond) = c.obj(ep.get("conditions"), &child(&ep_path, "conditions")) {
            for k in ["ready", "serving", "terminating"] {
                c.bool(cond.get(k), &child(&child(&ep_path, "conditions"), k));
            }
        }
        for k in ["nodeName", "hostname", "zone"] {
            c.str(ep.get(k), &child(&ep_path, k));
        }
        c.obj(ep.get("targetRef"), &child(&ep_path, "targetRef"));
    }
    validate_ports(c, obj.get("ports"), "ports", true);
}

/// The update rules of an EndpointSlice: the address type is immutable.
pub(crate) fn validate_endpoint_slice_update(c: &mut Ctx, old: &Value, new: &Value) {
    let ty = |v: &Value| {
        v.get("addressType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if ty(old) != ty(new) {
        c.invalid_str("addressType", &ty(new), "field is immutable");
    }
}

/// Defaults a PersistentVolume (`claim` false) or PersistentVolumeClaim.
pub(crate) fn default_volume(obj: &mut Value, claim: bool) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if let Some(spec) = ensure_obj(root, "spec") {
        set_default_str(spec, "volumeMode", "Filesystem");
        if claim {
            if let Some(req) = obj_mut(spec, "resources").and_then(|r| obj_mut(r, "requests")) {
                quantities_to_strings(req);
            }
        } else {
            set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
            if let Some(cap) = obj_mut(spec, "capacity") {
                quantities_to_strings(cap);
            }
        }
    }
    if let Some(status) = ensure_obj(root, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

/// Validates a PersistentVolume or PersistentVolumeClaim spec's enums and quantities.
pub(crate) fn validate_volume(c: &mut Ctx, obj: &Value, claim: bool) {
    let Some(spec) = c.obj_or_empty(obj.get("spec"), "spec") else {
        return;
    };
    c.one_of(
        spec.get("volumeMode"),
        "spec.volumeMode",
        &["Block", "Filesystem"],
    );
    let modes = [
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    for (i, m) in c
        .str_list(spec.get("accessModes"), "spec.accessModes")
        .iter()
        .enumerate()
    {
        if !modes.contains(m) {
            c.not_supported(&index("spec.accessModes", i), m, &modes);
        }
    }
    c.str(spec.get("storageClassName"), "spec.storageClassName");
    if claim {
        if let Some(r) = c.obj(spec.get("resources"), "spec.resources") {
            validate_resource_list(c, r.get("requests"), "spec.resources.requests", false);
            validate_resource_list(c, r.get("limits"), "spec.resources.limits", false);
        }
        c.str(spec.get("volumeName"), "spec.volumeName");
    } else {
        c.one_of(
            spec.get("persistentVolumeReclaimPolicy"),
            "spec.persistentVolumeReclaimPolicy",
            &["Delete", "Recycle", "Retain"],
        );
        validate_resource_list(c, spec.get("capacity"), "spec.capacity", false);
    }
}
