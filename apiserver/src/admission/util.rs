//! Shared machinery of admission: a collector of field errors with typed accessors over
//! untrusted JSON (a wrong type becomes a field error, never a panic), field path
//! building, and the small defaulting helpers every kind uses.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::status::FieldError;

/// A JSON object.
pub(crate) type Obj = Map<String, Value>;

/// `path.name` (or `name` at the root).
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]`, as upstream writes map keys.
pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// An empty object, for absent optional structs.
pub(crate) fn empty() -> &'static Obj {
    static EMPTY: OnceLock<Obj> = OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

/// The JSON type name of a value, for type errors.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as shown in messages, cut short when long.
pub(crate) fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// An int-or-string field (`targetPort`, `maxSurge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntOrStr<'a> {
    /// The integer form.
    Int(i64),
    /// The string form.
    Str(&'a str),
}

/// Collects the field errors of one object.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    /// Errors so far, in the order found.
    pub errs: Vec<FieldError>,
}

impl Ctx {
    /// Number of errors so far.
    pub fn len(&self) -> usize {
        self.errs.len()
    }

    /// Adds an error.
    pub fn push(&mut self, e: FieldError) {
        self.errs.push(e);
    }

    /// `Required value`.
    pub fn required(&mut self, path: &str, detail: &str) {
        self.push(FieldError::required(path, detail));
    }

    /// `Invalid value: v: detail`.
    pub fn invalid(&mut self, path: &str, v: &Value, detail: &str) {
        self.push(FieldError::invalid(path, v, detail));
    }

    /// `Invalid value` for a string value.
    pub fn invalid_str(&mut self, path: &str, v: &str, detail: &str) {
        self.push(FieldError::invalid(
            path,
            &Value::String(v.to_string()),
            detail,
        ));
    }

    /// `Invalid value` for an integer value.
    pub fn invalid_int(&mut self, path: &str, v: i64, detail: &str) {
        self.push(FieldError::invalid(path, &Value::from(v), detail));
    }

    /// `Unsupported value`.
    pub fn not_supported(&mut self, path: &str, v: &str, supported: &[&str]) {
        self.push(FieldError::not_supported(
            path,
            &Value::String(v.to_string()),
            supported,
        ));
    }

    /// `Forbidden: detail`.
    pub fn forbidden(&mut self, path: &str, detail: &str) {
        self.push(FieldError::forbidden(path, detail));
    }

    /// `Duplicate value`.
    pub fn duplicate(&mut self, path: &str, v: &Value) {
        self.push(FieldError::duplicate(path, v));
    }

    /// `Not found: v`.
    pub fn not_found(&mut self, path: &str, v: &str) {
        self.push(FieldError {
            kind: "FieldValueNotFound",
            field: path.to_string(),
            message: format!("Not found: {v:?}"),
        });
    }

    /// `Too long: must have at most N bytes`.
    pub fn too_long(&mut self, path: &str, max: usize) {
        self.push(FieldError {
            kind: "FieldValueTooLong",
            field: path.to_string(),
            message: format!("Too long: must have at most {max} bytes"),
        });
    }

    /// A value of the wrong JSON type.
    pub fn wrong_type(&mut self, path: &str, v: &Value, expected: &str) {
        self.push(FieldError {
            kind: "FieldValueTypeInvalid",
            field: path.to_string(),
            message: format!(
                "Invalid value: {}: must be of type {expected}, not {}",
                shown(v),
                type_name(v)
            ),
        });
    }

    /// An object field: None when absent or null, or (with an error) of another type.
    pub fn obj<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<&'a Obj> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.wrong_type(path, other, "object");
                None
            }
        }
    }

    /// An object field that is empty when absent; None only for a wrong type.
    pub fn obj_or_empty<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<&'a Obj> {
        match v {
            None | Some(Value::Null) => Some(empty()),
            _ => self.obj(v, path),
        }
    }

    /// An array field.
    pub fn arr<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<&'a [Value]> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(other) => {
                self.wrong_type(path, other, "array");
                None
            }
        }
    }

    /// The elements of an array field (empty when absent or mistyped).
    pub fn items<'a>(&mut self, v: Option<&'a Value>, path: &str) -> &'a [Value] {
        self.arr(v, path).unwrap_or(&[])
    }

    /// A string field.
    pub fn str<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<&'a str> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.wrong_type(path, other, "string");
                None
            }
        }
    }

    /// A string field, empty when absent or mistyped.
    pub fn string<'a>(&mut self, v: Option<&'a Value>, path: &str) -> &'a str {
        self.str(v, path).unwrap_or("")
    }

    /// An integer field.
    pub fn int(&mut self, v: Option<&Value>, path: &str) -> Option<i64> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Some(i),
                None => {
                    let detail = if n.is_u64() {
                        "is out of range"
                    } else {
                        "must be an integer"
                    };
                    self.invalid(path, &Value::Number(n.clone()), detail);
                    None
                }
            },
            Some(other) => {
                self.wrong_type(path, other, "integer");
                None
            }
        }
    }

    /// A boolean field.
    pub fn bool(&mut self, v: Option<&Value>, path: &str) -> Option<bool> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.wrong_type(path, other, "boolean");
                None
            }
        }
    }

    /// An int-or-string field.
    pub fn int_or_str<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<IntOrStr<'a>> {
        match v {
            Some(Value::String(s)) => Some(IntOrStr::Str(s)),
            Some(Value::Number(_)) => self.int(v, path).map(IntOrStr::Int),
            None | Some(Value::Null) => None,
            Some(other) => {
                self.wrong_type(path, other, "integer or string");
                None
            }
        }
    }

    /// A map of strings (labels, selectors, data); entries of other types are errors.
    pub fn str_map<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Vec<(&'a str, &'a str)> {
        let Some(m) = self.obj(v, path) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(m.len());
        for (k, val) in m {
            match val {
                Value::String(s) => out.push((k.as_str(), s.as_str())),
                // Go decodes null into a map[string]string as "".
                Value::Null => out.push((k.as_str(), "")),
                other => self.wrong_type(&key(path, k), other, "string"),
            }
        }
        out
    }

    /// A list of strings; elements of other types are errors.
    pub fn str_list<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        for (i, item) in self.items(v, path).iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.as_str()),
                other => self.wrong_type(&index(path, i), other, "string"),
            }
        }
        out
    }

    /// An integer that must be at least `min`, with upstream's wording.
    pub fn int_at_least(&mut self, v: Option<&Value>, path: &str, min: i64) -> Option<i64> {
        let n = self.int(v, path)?;
        if n < min {
            self.invalid_int(path, n, &format!("must be greater than or equal to {min}"));
        }
        Some(n)
    }

    /// A string field that must be one of `supported` when set (and non-empty).
    pub fn one_of(&mut self, v: Option<&Value>, path: &str, supported: &[&str]) -> Option<String> {
        let s = self.str(v, path)?;
        if s.is_empty() {
            return None;
        }
        if !supported.contains(&s) {
            self.not_supported(path, s, supported);
        }
        Some(s.to_string())
    }
}

/// Whether `v` is absent for defaulting: missing or null.
fn unset(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// Sets `m[k]` when it is missing or null.
pub(crate) fn set_default(m: &mut Obj, k: &str, v: Value) {
    if unset(m.get(k)) {
        m.insert(k.to_string(), v);
    }
}

/// Sets a string `m[k]` when missing, null or empty (Go's zero value).
pub(crate) fn set_default_str(m: &mut Obj, k: &str, v: &str) {
    if unset(m.get(k)) || m.get(k).and_then(Value::as_str) == Some("") {
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
}

/// Sets an integer `m[k]` when missing, null or 0 (Go's zero value of a non-pointer).
pub(crate) fn set_default_nonzero(m: &mut Obj, k: &str, v: i64) {
    let zero = m
        .get(k)
        .is_some_and(|x| x.as_i64() == Some(0) || x.as_f64() == Some(0.0));
    if unset(m.get(k)) || zero {
        m.insert(k.to_string(), Value::from(v));
    }
}

/// `m[k]` as a mutable object, created when missing or null; None if it has another type.
pub(crate) fn ensure_obj<'a>(m: &'a mut Obj, k: &str) -> Option<&'a mut Obj> {
    if unset(m.get(k)) {
        m.insert(k.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(k).and_then(Value::as_object_mut)
}

/// `m[k]` as a mutable object if it is one.
pub(crate) fn obj_mut<'a>(m: &'a mut Obj, k: &str) -> Option<&'a mut Obj> {
    m.get_mut(k).and_then(Value::as_object_mut)
}

/// The object elements of the array `m[k]`.
pub(crate) fn objs_mut<'a>(m: &'a mut Obj, k: &str) -> impl Iterator<Item = &'a mut Obj> {
    m.get_mut(k)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|a| a.iter_mut())
        .filter_map(Value::as_object_mut)
}

/// A string field of an object, if it is one.
pub(crate) fn get_str<'a>(m: &'a Obj, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

impl Ctx {
    /// A string field that must be set and non-empty: a `Required value` error when it is
    /// missing or empty (a wrong type gives its own error instead).
    pub fn required_str<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<&'a str> {
        let before = self.len();
        match self.str(v, path) {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                if self.len() == before {
                    self.required(path, "");
                }
                None
            }
        }
    }

    /// An array field that must be present and non-empty (`Required value` otherwise).
    pub fn required_items<'a>(&mut self, v: Option<&'a Value>, path: &str) -> &'a [Value] {
        let before = self.len();
        let items = self.items(v, path);
        if items.is_empty() && self.len() == before {
            self.required(path, "");
        }
        items
    }
}
