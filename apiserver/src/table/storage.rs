//! PersistentVolumes (`NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS
//! REASON AGE`, wide `VOLUMEMODE`) and PersistentVolumeClaims (`NAME STATUS VOLUME CAPACITY
//! ACCESS MODES STORAGECLASS AGE`, wide `VOLUMEMODE`).

use serde_json::Value;

use super::format::{access_modes, arr_at, at, has_obj, obj_at, quantity, str_at};
use super::{AGE, Column, NAME, age_at, deleting, name, text};
use crate::object;

/// The legacy annotation that, when present, names the storage class instead of the spec.
const CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The storage class: the legacy annotation if present, else `spec.storageClassName`.
fn storage_class(o: &Value) -> String {
    match object::meta(o)
        .get("annotations")
        .and_then(Value::as_object)
        .and_then(|a| a.get(CLASS_ANNOTATION))
    {
        Some(v) => v.as_str().unwrap_or("").to_string(),
        None => str_at(o, &["spec", "storageClassName"]).to_string(),
    }
}

/// The phase, or `Terminating` once deletion has begun.
fn phase(o: &Value) -> String {
    if deleting(o) {
        "Terminating".into()
    } else {
        str_at(o, &["status", "phase"]).to_string()
    }
}

/// `spec.volumeMode`, `<unset>` when missing.
fn volume_mode(o: &Value) -> String {
    at(o, &["spec", "volumeMode"])
        .and_then(Value::as_str)
        .unwrap_or("<unset>")
        .to_string()
}

/// PersistentVolume columns.
pub(super) const PV: &[Column] = &[
    NAME,
    Column::new("Capacity", "string", "The volume's storage capacity."),
    Column::new(
        "Access Modes",
        "string",
        "How the volume can be mounted: RWO, ROX, RWX, RWOP.",
    ),
    Column::new(
        "Reclaim Policy",
        "string",
        "What happens to the volume when its claim is released.",
    ),
    Column::new(
        "Status",
        "string",
        "The volume's phase: Available, Bound, Released or Failed.",
    ),
    Column::new(
        "Claim",
        "string",
        "The claim bound to the volume, as namespace/name.",
    ),
    Column::new("StorageClass", "string", "The volume's storage class."),
    Column::new(
        "Reason",
        "string",
        "Why the volume is in its phase, when failed.",
    ),
    AGE,
    Column::new("VolumeMode", "string", "Filesystem or Block.").wide(),
];

/// PersistentVolume row.
pub(super) fn pv(o: &Value, now: i64) -> Vec<Value> {
    let claim = if has_obj(o, &["spec", "claimRef"]) {
        format!(
            "{}/{}",
            str_at(o, &["spec", "claimRef", "namespace"]),
            str_at(o, &["spec", "claimRef", "name"])
        )
    } else {
        String::new()
    };
    vec![
        name(o),
        text(quantity(at(o, &["spec", "capacity", "storage"]))),
        text(access_modes(arr_at(o, &["spec", "accessModes"]))),
        text(str_at(o, &["spec", "persistentVolumeReclaimPolicy"])),
        text(phase(o)),
        text(claim),
        text(storage_class(o)),
        text(str_at(o, &["status", "reason"])),
        age_at(o, now),
        text(volume_mode(o)),
    ]
}

/// PersistentVolumeClaim columns.
pub(super) const PVC: &[Column] = &[
    NAME,
    Column::new(
        "Status",
        "string",
        "The claim's phase: Pending, Bound or Lost.",
    ),
    Column::new("Volume", "string", "The volume bound to the claim."),
    Column::new("Capacity", "string", "The bound volume's capacity."),
    Column::new(
        "Access Modes",
        "string",
        "How the bound volume can be mounted: RWO, ROX, RWX, RWOP.",
    ),
    Column::new("StorageClass", "string", "The claim's storage class."),
    AGE,
    Column::new("VolumeMode", "string", "Filesystem or Block.").wide(),
];

/// PersistentVolumeClaim row: capacity and access modes only once bound to a volume.
pub(super) fn pvc(o: &Value, now: i64) -> Vec<Value> {
    let volume = str_at(o, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(obj_at(o, &["status", "capacity"]).and_then(|c| c.get("storage"))),
            access_modes(arr_at(o, &["status", "accessModes"])),
        )
    };
    vec![
        name(o),
        text(phase(o)),
        text(volume),
        text(capacity),
        text(modes),
        text(storage_class(o)),
        age_at(o, now),
        text(volume_mode(o)),
    ]
}
