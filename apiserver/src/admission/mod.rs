//! Defaulting and validation per kind, as upstream's registry strategies and built-in
//! admission do them: `default` fills in what the API server defaults (idempotently, on
//! create and on update), `validate_create` and `validate_update` return one
//! [`FieldError`] per bad field with upstream's paths and wording.
//!
//! Objects arrive as untrusted JSON: every accessor checks types, so a wrong type anywhere
//! becomes a field error, never a panic. The handler has already checked apiVersion/kind,
//! the namespace and the system fields of `metadata`.
//!
//! Besides the three entry points, this module exports helpers other components reuse:
//! the quantity parser ([`quantity_milli`]), label selector matching
//! ([`selector_matches`]), the default image pull policy and the pod QoS class.

mod apps;
mod config;
mod corekinds;
mod meta;
mod names;
mod pod;
mod service;
mod util;

use serde_json::Value;

use crate::registry::Resource;
use crate::status::FieldError;

pub use config::MAX_DATA_BYTES;
pub use corekinds::NAMESPACE_NAME_LABEL;
pub use kubeutil::quantity::{
    QUANTITY_FORMAT_MSG, QuantityError, parse_milli, parse_quantity, quantity_milli, quantity_text,
    quantity_value,
};
pub use meta::{ANNOTATIONS_MAX_BYTES, selector_matches};
pub use names::{
    config_key_errors, dns1035_label_error, env_var_name_errors, label_value_errors,
    port_name_errors, qualified_name_errors,
};
pub use pod::{POD_UPDATE_MSG, default_pull_policy, qos_class};

use pod::Owner;
use util::Ctx;

/// The kinds admission knows; anything else gets metadata checks only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Namespace,
    Pod,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    PersistentVolume,
    PersistentVolumeClaim,
    Deployment,
    ReplicaSet,
    DaemonSet,
    EndpointSlice,
    Other,
}

fn kind_of(r: &Resource) -> Kind {
    match (r.group, r.kind) {
        ("", "Namespace") => Kind::Namespace,
        ("", "Pod") => Kind::Pod,
        ("", "Service") => Kind::Service,
        ("", "Endpoints") => Kind::Endpoints,
        ("", "ConfigMap") => Kind::ConfigMap,
        ("", "Secret") => Kind::Secret,
        ("", "PersistentVolume") => Kind::PersistentVolume,
        ("", "PersistentVolumeClaim") => Kind::PersistentVolumeClaim,
        ("apps", "Deployment") => Kind::Deployment,
        ("apps", "ReplicaSet") => Kind::ReplicaSet,
        ("apps", "DaemonSet") => Kind::DaemonSet,
        ("discovery.k8s.io", "EndpointSlice") => Kind::EndpointSlice,
        _ => Kind::Other,
    }
}

/// The rule `metadata.name` follows for a kind.
fn name_rule(kind: Kind) -> meta::NameCheck {
    match kind {
        Kind::Namespace => names::label_error,
        Kind::Service => names::dns1035_label_error,
        _ => names::subdomain_error,
    }
}

/// Fills defaults into a new or updated object of `resource`. Idempotent; leaves parts of
/// the wrong type alone (validation reports them).
pub fn default(resource: &Resource, obj: &mut Value) {
    match kind_of(resource) {
        Kind::Namespace => corekinds::default_namespace(obj),
        Kind::Pod => pod::default_pod(obj),
        Kind::Service => service::default_service(obj),
        Kind::Endpoints => corekinds::default_endpoints(obj),
        Kind::Secret => config::default_secret(obj),
        Kind::PersistentVolume => corekinds::default_volume(obj, false),
        Kind::PersistentVolumeClaim => corekinds::default_volume(obj, true),
        Kind::Deployment => apps::default_workload(obj, Owner::Deployment),
        Kind::ReplicaSet => apps::default_workload(obj, Owner::ReplicaSet),
        Kind::DaemonSet => apps::default_workload(obj, Owner::DaemonSet),
        Kind::EndpointSlice => corekinds::default_endpoint_slice(obj),
        Kind::ConfigMap | Kind::Other => {}
    }
}

/// Validates an object about to be created.
pub fn validate_create(resource: &Resource, obj: &Value) -> Vec<FieldError> {
    let mut c = Ctx::default();
    validate(&mut c, kind_of(resource), obj, true);
    c.errs
}

/// Validates an update from `old` to `new`: `new` as on create (less the create-only
/// rules), plus what may not change.
pub fn validate_update(resource: &Resource, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut c = Ctx::default();
    let kind = kind_of(resource);
    validate(&mut c, kind, new, false);
    if !new.is_object() {
        return c.errs;
    }
    match kind {
        Kind::Pod => pod::validate_pod_update(&mut c, old, new),
        Kind::Service => service::validate_service_update(&mut c, old, new),
        Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet => {
            apps::validate_workload_update(&mut c, old, new)
        }
        Kind::ConfigMap => config::validate_data_update(&mut c, old, new, false),
        Kind::Secret => config::validate_data_update(&mut c, old, new, true),
        Kind::EndpointSlice => corekinds::validate_endpoint_slice_update(&mut c, old, new),
        _ => {}
    }
    c.errs
}

fn validate(c: &mut Ctx, kind: Kind, obj: &Value, create: bool) {
    if !obj.is_object() {
        c.wrong_type("object", obj, "object");
        return;
    }
    let name = obj.pointer("/metadata/name");
    let generate = obj.pointer("/metadata/generateName");
    let blank = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
    if name.is_none_or(Value::is_string) && blank(name) && blank(generate) {
        c.required("metadata.name", "name or generateName is required");
    }
    meta::validate_object_meta(c, obj, name_rule(kind));
    match kind {
        Kind::Namespace => corekinds::validate_namespace(c, obj),
        Kind::Pod => pod::validate_pod(c, obj, create),
        Kind::Service => service::validate_service(c, obj, create),
        Kind::Endpoints => corekinds::validate_endpoints(c, obj),
        Kind::ConfigMap => config::validate_data(c, obj, false),
        Kind::Secret => config::validate_data(c, obj, true),
        Kind::PersistentVolume => corekinds::validate_volume(c, obj, false),
        Kind::PersistentVolumeClaim => corekinds::validate_volume(c, obj, true),
        Kind::Deployment => apps::validate_workload(c, obj, Owner::Deployment, create),
        Kind::ReplicaSet => apps::validate_workload(c, obj, Owner::ReplicaSet, create),
        Kind::DaemonSet => apps::validate_workload(c, obj, Owner::DaemonSet, create),
        Kind::EndpointSlice => corekinds::validate_endpoint_slice(c, obj),
        Kind::Other => {}
    }
}
