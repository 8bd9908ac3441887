//! Kubernetes `Status` failures: what every request error becomes on the wire, with the HTTP
//! code, `reason` and `details` clients (kubectl, client-go, kube-rs) match on.

use serde_json::{Value, json};

use crate::store::StoreError;

/// One invalid field of a 422 Invalid answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Upstream cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub kind: &'static str,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// Human-readable description (`Required value`, `Invalid value: "x": ...`).
    pub message: String,
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            kind: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// A field has a bad value.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            kind: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {detail}"),
        }
    }

    /// A field value is not one of the supported ones.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            kind: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        }
    }

    /// A field may not be changed.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            kind: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    /// A duplicate value.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            kind: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value}"),
        }
    }

    /// A field is not known for the kind (strict field validation).
    pub fn unknown(field: impl Into<String>) -> Self {
        let field = field.into();
        FieldError {
            kind: "FieldValueInvalid",
            message: format!("unknown field {field:?}"),
            field,
        }
    }
}

/// A request failure, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details` (name, group, kind, causes), if any.
    pub details: Option<Value>,
}

/// Result alias for request handling.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut d = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = Some(d);
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 for an object; `resource` is the plural (`pods`) with its group (`deployments.apps`).
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(group, resource)),
        )
        .with_details(name, group, resource)
    }

    /// 404 for a path that serves nothing.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405 Method Not Allowed.
    pub fn method_not_allowed(verb: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on {what}"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(group, resource)),
        )
        .with_details(name, group, resource)
    }

    /// 409 Conflict (stale resourceVersion), with upstream's wording.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, resource)
            ),
        )
        .with_details(name, group, resource)
    }

    /// 410 Gone: a watch or list from a compacted resourceVersion.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 Request Entity Too Large.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// 422 Invalid, listing every bad field as upstream does.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let summary: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        let message = if summary.len() == 1 {
            format!("{kind} {name:?} is invalid: {}", summary[0])
        } else {
            format!("{kind} {name:?} is invalid: [{}]", summary.join(", "))
        };
        let mut e = Self::new(422, "Invalid", message).with_details(name, group, kind);
        if let Some(d) = e.details.as_mut() {
            d["causes"] = errors
                .iter()
                .map(|f| json!({ "reason": f.kind, "message": f.message, "field": f.field }))
                .collect();
        }
        e
    }

    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 503 Service Unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// Maps a store failure for object `name` of `resource`.
    pub fn from_store(e: StoreError, group: &str, resource: &str, name: &str) -> Self {
        match e {
            StoreError::AlreadyExists(_) => Self::already_exists(group, resource, name),
            StoreError::NotFound(_) => Self::not_found(group, resource, name),
            StoreError::Conflict { .. } => Self::conflict(group, resource, name),
            StoreError::Compacted {
                requested,
                compacted,
            } => Self::gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => {
                let mut e = Self::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {requested}, current: {current}"),
                );
                e.details = Some(
                    json!({ "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }], "retryAfterSeconds": 1 }),
                );
                e
            }
            StoreError::Backend(m) => Self::internal(m),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A `Status` object for success (delete of an object that is gone right away, for kinds
/// that answer with Status).
pub fn success(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": resource, "uid": uid });
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_each_field() {
        let e = ApiError::invalid(
            "",
            "Pod",
            "web",
            &[
                FieldError::required("spec.containers[0].image", ""),
                FieldError::invalid(
                    "metadata.name",
                    &json!("Web"),
                    "a lowercase RFC 1123 subdomain",
                ),
            ],
        );
        assert_eq!(e.code, 422);
        let s = e.to_status();
        assert_eq!(s["reason"], "Invalid");
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .contains("spec.containers[0].image: Required value")
        );
        assert_eq!(s["details"]["causes"][1]["field"], "metadata.name");
    }

    #[test]
    fn not_found_uses_upstream_wording() {
        let e = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["details"]["group"], "apps");
    }
}
