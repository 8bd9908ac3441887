//! ConfigMaps (`NAME DATA AGE`), Secrets (`NAME TYPE DATA AGE`) and ServiceAccounts (`NAME
//! SECRETS AGE`).

use serde_json::Value;

use super::format::{arr_at, obj_at, str_at};
use super::{AGE, Column, NAME, age_at, int, name, text};

/// Entries of the object at `field` (0 when missing or not an object).
fn entries(o: &Value, field: &str) -> i64 {
    obj_at(o, &[field]).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
}

/// ConfigMap columns.
pub(super) const CONFIGMAP: &[Column] = &[
    NAME,
    Column::new(
        "Data",
        "string",
        "Number of keys, in data and binaryData together.",
    ),
    AGE,
];

/// ConfigMap row.
pub(super) fn configmap(o: &Value, now: i64) -> Vec<Value> {
    let data = entries(o, "data").saturating_add(entries(o, "binaryData"));
    vec![name(o), int(data), age_at(o, now)]
}

/// Secret columns.
pub(super) const SECRET: &[Column] = &[
    NAME,
    Column::new(
        "Type",
        "string",
        "The secret's type, such as Opaque or kubernetes.io/tls.",
    ),
    Column::new("Data", "string", "Number of keys in data."),
    AGE,
];

/// Secret row.
pub(super) fn secret(o: &Value, now: i64) -> Vec<Value> {
    vec![
        name(o),
        text(str_at(o, &["type"])),
        int(entries(o, "data")),
        age_at(o, now),
    ]
}

/// ServiceAccount columns.
pub(super) const SERVICEACCOUNT: &[Column] = &[
    NAME,
    Column::new(
        "Secrets",
        "string",
        "Number of secrets listed for the service account.",
    ),
    AGE,
];

/// ServiceAccount row.
pub(super) fn serviceaccount(o: &Value, now: i64) -> Vec<Value> {
    let secrets = i64::try_from(arr_at(o, &["secrets"]).len()).unwrap_or(i64::MAX);
    vec![name(o), int(secrets), age_at(o, now)]
}
