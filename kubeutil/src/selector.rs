//! Label and field selectors.
//!
//! Label selectors use the Kubernetes string syntax (`app=web,tier!=db`, `env in (a,b)`,
//! `!legacy`, ...) or the structured `metav1.LabelSelector` object that workload and service
//! specs carry ([`LabelSelector::from_api`]). Field selectors are the simpler
//! `field=value,field!=value` form with `\,`, `\=` and `\\` escapes in values.
//!
//! Everything here parses untrusted request data: no input makes these functions panic;
//! malformed input is a [`SelectorError`] whose message reads like the upstream API server's.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

use serde_json::{Map, Value};

/// Why a selector could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// One requirement of a label selector is malformed or invalid.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// The label selector's overall structure is wrong (a stray comma, a missing key).
    #[error("{0}")]
    Syntax(String),
    /// A field selector term has no recognisable operator or field.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that could not be understood.
        term: String,
    },
    /// A field selector value has a bad escape or an unescaped `,` or `=`.
    #[error("invalid field selector: {0}")]
    FieldValue(String),
    /// A structured `metav1.LabelSelector` is invalid.
    #[error("{0}")]
    Invalid(String),
}

// ------------------------------------------------------------------ validation

const NAME_MAX: usize = 63;
const PREFIX_MAX: usize = 253;

const NAME_CHARS_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')";

/// True for `[A-Za-z0-9]` at both ends and `[-A-Za-z0-9_.]` inside; empty is false.
fn label_chars_ok(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() => b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')),
        _ => false,
    }
}

/// An RFC 1123 subdomain: dot-separated lowercase labels of `[a-z0-9-]`, each starting and
/// ending alphanumeric, at most 253 characters in all.
fn dns_subdomain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= PREFIX_MAX
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
                    edge(f) && edge(l) && b.iter().all(|c| edge(c) || *c == b'-')
                }
                _ => false,
            }
        })
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9-_.]` that starts and ends alphanumeric.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        None => key,
        Some((prefix, name)) => {
            if name.contains('/') {
                return Err(format!(
                    "a qualified name {NAME_CHARS_MSG}, with an optional DNS subdomain prefix and '/' \
                     (e.g. 'example.com/MyName')"
                ));
            }
            if prefix.is_empty() {
                return Err("prefix part must be non-empty".to_string());
            }
            if prefix.len() > PREFIX_MAX {
                return Err(format!(
                    "prefix part must be no more than {PREFIX_MAX} characters"
                ));
            }
            if !dns_subdomain_ok(prefix) {
                return Err("prefix part a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
                     character (e.g. 'example.com')"
                    .to_string());
            }
            name
        }
    };
    if name.is_empty() {
        return Err("name part must be non-empty".to_string());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "name part must be no more than {NAME_MAX} characters"
        ));
    }
    if !label_chars_ok(name) {
        return Err(format!("name part {NAME_CHARS_MSG}"));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 characters of `[A-Za-z0-9-_.]` that start and
/// end alphanumeric.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > NAME_MAX {
        return Err(format!("must be no more than {NAME_MAX} characters"));
    }
    if !label_chars_ok(value) {
        return Err(
            "a valid label must be an empty string or consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character \
             (e.g. 'MyValue', or 'my_value', or '12345')"
                .to_string(),
        );
    }
    Ok(())
}

fn key_error(key: &str, why: &str) -> String {
    format!("key: Invalid value: {key:?}: {why}")
}

fn value_error(key: &str, value: &str, why: &str) -> String {
    format!("invalid label value: {value:?}: at key: {key:?}: {why}")
}

// ------------------------------------------------------------------ label selectors

/// Something labels can be looked up in.
pub trait Labels {
    /// The value of label `key`, if set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON `metadata.labels` object; values that are not strings count as unset.
impl Labels for Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `key in (a,b)`: the label is set to one of the values.
    In,
    /// `key notin (a,b)`: the label is unset or set to none of the values.
    NotIn,
    /// `key=a` or `key==a`: the label is set to the value.
    Equals,
    /// `key!=a`: the label is unset or set to something else.
    NotEquals,
    /// `key`: the label is set.
    Exists,
    /// `!key`: the label is unset.
    DoesNotExist,
    /// `key>5`: the label is set to an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label is set to an integer less than the value.
    LessThan,
}

/// One requirement of a label selector: a key, an operator and its values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    op: Operator,
    /// Sorted and deduplicated.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a validated requirement. `In`/`NotIn` need at least one value, `Equals`,
    /// `NotEquals`, `GreaterThan` and `LessThan` exactly one (an integer for the last two),
    /// `Exists`/`DoesNotExist` none.
    pub fn new(
        key: impl Into<String>,
        op: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        validate_label_key(&key)
            .map_err(|why| SelectorError::Requirement(key_error(&key, &why)))?;
        let bad = |msg: &str| {
            Err(SelectorError::Requirement(format!(
                "values: Invalid value: {values:?}: {msg}"
            )))
        };
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return bad("for 'in', 'notin' operators, values set can't be empty");
            }
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return bad("exact-match compatibility requires one single value");
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return bad("values set must be empty for exists and does not exist");
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return bad("for 'Gt', 'Lt' operators, exactly one value is required");
                }
                if values.iter().any(|v| v.parse::<i64>().is_err()) {
                    return bad("for 'Gt', 'Lt' operators, the value must be an integer");
                }
            }
            _ => {}
        }
        if !matches!(op, Operator::GreaterThan | Operator::LessThan) {
            for v in &values {
                validate_label_value(v)
                    .map_err(|why| SelectorError::Requirement(value_error(&key, v, &why)))?;
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement { key, op, values })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The values, sorted and without duplicates.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let got = labels.label(&self.key);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        let number = || self.values.first().and_then(|v| v.parse::<i64>().ok());
        match self.op {
            Operator::In | Operator::Equals => got.is_some_and(listed),
            Operator::NotIn | Operator::NotEquals => !got.is_some_and(listed),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan => match (got.and_then(|g| g.parse::<i64>().ok()), number()) {
                (Some(g), Some(n)) => g > n,
                _ => false,
            },
            Operator::LessThan => match (got.and_then(|g| g.parse::<i64>().ok()), number()) {
                (Some(g), Some(n)) => g < n,
                _ => false,
            },
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.op {
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::Exists => f.write_str(&self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{first}", self.key),
            Operator::LessThan => write!(f, "{}<{first}", self.key),
        }
    }
}

/// A label selector: requirements that must all hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Sorted by key (stably), as upstream does.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Builds a selector from requirements.
    pub fn new(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// True when there are no requirements (the selector matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Converts a `metav1.LabelSelector` JSON object (`matchLabels` and `matchExpressions`
    /// with `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty object matches everything;
    /// so does `null`: callers for whom an absent selector matches nothing check for it first.
    pub fn from_api(selector: &Value) -> Result<Self, SelectorError> {
        let obj = match selector {
            Value::Null => return Ok(Self::everything()),
            Value::Object(m) => m,
            _ => {
                return Err(SelectorError::Invalid(
                    "a label selector must be an object".to_string(),
                ));
            }
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => reqs.extend(Self::from_match_labels(m)?.requirements),
            Some(_) => {
                return Err(SelectorError::Invalid(
                    "matchLabels must be an object".to_string(),
                ));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    reqs.push(expression(i, e)?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Invalid(
                    "matchExpressions must be a list".to_string(),
                ));
            }
        }
        Ok(Self::new(reqs))
    }

    /// Builds an equality selector from a plain label map, such as a Service's
    /// `spec.selector` or a `matchLabels` object. Values must be strings.
    pub fn from_match_labels(labels: &Map<String, Value>) -> Result<Self, SelectorError> {
        let mut reqs = Vec::with_capacity(labels.len());
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return Err(SelectorError::Invalid(format!(
                    "the value of label {k:?} must be a string"
                )));
            };
            reqs.push(Requirement::new(
                k.clone(),
                Operator::Equals,
                vec![v.to_string()],
            )?);
        }
        Ok(Self::new(reqs))
    }
}

/// One `matchExpressions` entry.
fn expression(i: usize, e: &Value) -> Result<Requirement, SelectorError> {
    let invalid = |msg: String| SelectorError::Invalid(format!("matchExpressions[{i}]: {msg}"));
    let Value::Object(e) = e else {
        return Err(invalid("must be an object".to_string()));
    };
    let key = e
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("key must be a string".to_string()))?;
    let op = match e.get("operator").and_then(Value::as_str) {
        Some("In") => Operator::In,
        Some("NotIn") => Operator::NotIn,
        Some("Exists") => Operator::Exists,
        Some("DoesNotExist") => Operator::DoesNotExist,
        Some(other) => {
            return Err(invalid(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
        None => return Err(invalid("operator must be a string".to_string())),
    };
    let values = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => {
            let mut out = Vec::with_capacity(vs.len());
            for v in vs {
                out.push(
                    v.as_str()
                        .ok_or_else(|| invalid("values must be strings".to_string()))?
                        .to_string(),
                );
            }
            out
        }
        Some(_) => return Err(invalid("values must be a list".to_string())),
    };
    Requirement::new(key, op, values).map_err(|err| match err {
        SelectorError::Requirement(msg) => invalid(msg),
        other => other,
    })
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        parse_label_selector(s)
    }
}

/// A token of the label selector syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Bang,
    NotEq,
    Eq,
    DoubleEq,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    End,
}

impl Tok {
    /// The token as written, for error messages (empty at the end of the string).
    fn text(&self) -> &str {
        match self {
            Tok::Ident(s) => s,
            Tok::Bang => "!",
            Tok::NotEq => "!=",
            Tok::Eq => "=",
            Tok::DoubleEq => "==",
            Tok::Gt => ">",
            Tok::Lt => "<",
            Tok::In => "in",
            Tok::NotIn => "notin",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::End => "",
        }
    }

    /// The token read as a value: identifiers and the keywords `in`/`notin`.
    fn as_value(&self) -> Option<&str> {
        match self {
            Tok::Ident(s) => Some(s),
            Tok::In => Some("in"),
            Tok::NotIn => Some("notin"),
            _ => None,
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                Tok::NotEq
            }
            '!' => Tok::Bang,
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                Tok::DoubleEq
            }
            '=' => Tok::Eq,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || is_special(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                match word.as_str() {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident(word),
                }
            }
        };
        out.push(tok);
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::End)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            match self.peek() {
                Tok::End => return Ok(reqs),
                Tok::Ident(_) | Tok::Bang => {}
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.text()
                    )));
                }
            }
            reqs.push(self.requirement().map_err(SelectorError::Requirement)?);
            match self.next() {
                Tok::End => return Ok(reqs),
                Tok::Comma => {
                    if !matches!(self.peek(), Tok::Ident(_) | Tok::Bang) {
                        return Err(SelectorError::Syntax(format!(
                            "found '{}', expected: identifier after ','",
                            self.peek().text()
                        )));
                    }
                }
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        other.text()
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = self.peek() == &Tok::Bang;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Tok::Ident(k) => k,
            other => return Err(format!("found '{}', expected: identifier", other.text())),
        };
        validate_label_key(&key).map_err(|why| key_error(&key, &why))?;
        if negated {
            return Ok(Requirement {
                key,
                op: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        if matches!(self.peek(), Tok::End | Tok::Comma) {
            return Ok(Requirement {
                key,
                op: Operator::Exists,
                values: Vec::new(),
            });
        }
        let op = match self.next() {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Eq | Tok::DoubleEq => Operator::Equals,
            Tok::NotEq => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            other => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.text()
                ));
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.single_value()?],
        };
        Requirement::new(key, op, values).map_err(|e| match e {
            SelectorError::Requirement(msg) => msg,
            other => other.to_string(),
        })
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when a comma or the end follows.
    fn single_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(), Tok::End | Tok::Comma) {
            return Ok(String::new());
        }
        let t = self.next();
        match t.as_value() {
            Some(v) => Ok(v.to_string()),
            None => Err(format!("found '{}', expected: identifier", t.text())),
        }
    }

    /// `(a, b, ...)`; an empty slot (`()`, `(a,)`) is the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Tok::Open => {}
            other => return Err(format!("found '{}', expected: '('", other.text())),
        }
        let mut values = Vec::new();
        let mut current: Option<String> = None;
        loop {
            let t = self.next();
            match &t {
                Tok::Comma => values.push(current.take().unwrap_or_default()),
                Tok::Close => {
                    values.push(current.take().unwrap_or_default());
                    return Ok(values);
                }
                _ => match (t.as_value(), &current) {
                    (Some(v), None) => current = Some(v.to_string()),
                    (Some(v), Some(_)) => return Err(format!("found '{v}', expected: ',' or ')'")),
                    (None, _) => {
                        return Err(format!(
                            "found '{}', expected: ',', ')' or identifier",
                            t.text()
                        ));
                    }
                },
            }
        }
    }
}

/// Parses a label selector in the Kubernetes string syntax. The empty (or all-blank)
/// string is the selector that matches everything.
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, SelectorError> {
    let mut p = Parser {
        toks: lex(s),
        pos: 0,
    };
    Ok(LabelSelector::new(p.selector()?))
}

// ------------------------------------------------------------------ field selectors

/// A field selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    field: String,
    op: FieldOperator,
    value: String,
}

impl FieldRequirement {
    /// The field path (`metadata.name`, `spec.nodeName`, ...).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn operator(&self) -> FieldOperator {
        self.op
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a field value (missing counts as empty) satisfies the term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.op {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A field selector: terms that must all hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// True when there are no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in the order written.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The field paths the selector uses, for checking each is supported for the kind.
    pub fn fields(&self) -> impl Iterator<Item = &str> + '_ {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// The value a field must equal for the selector to match, when a `field=value` term
    /// pins it (useful to narrow a list to one name or node).
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object matches, given a lookup of its field values; `None` (a missing
    /// field) counts as the empty string, as upstream.
    pub fn matches<F>(&self, fields: &F) -> bool
    where
        F: Fn(&str) -> Option<String> + ?Sized,
    {
        self.requirements
            .iter()
            .all(|r| r.matches(fields(&r.field).as_deref()))
    }

    /// Whether a JSON object matches, resolving fields with [`field_value`].
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&|path: &str| field_value(obj, path))
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        parse_field_selector(s)
    }
}

/// Escapes `\`, `,` and `=` in a field selector value.
pub fn escape_field_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_field_value`]; any other escape, a trailing `\`, or a bare `,` or `=`
/// is an error.
fn unescape_field_value(v: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::FieldValue(format!(
                        "invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(SelectorError::FieldValue(
                        "invalid escape sequence: \\".to_string(),
                    ));
                }
            },
            ',' | '=' => return Err(SelectorError::FieldValue(format!("unescaped literal {c}"))),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Splits on commas not preceded by an escaping backslash.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Finds the first unescaped operator: `(field, op, raw value)`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        match c {
            '\\' => escaped = true,
            '!' if rest.starts_with("!=") => {
                return Some((&term[..i], FieldOperator::NotEquals, &term[i + 2..]));
            }
            '=' if rest.starts_with("==") => {
                return Some((&term[..i], FieldOperator::Equals, &term[i + 2..]));
            }
            '=' => return Some((&term[..i], FieldOperator::Equals, &term[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Parses a field selector (`metadata.name=foo,status.phase!=Running`). Blank terms are
/// skipped; whitespace around fields and values is ignored; a field must be made of
/// `[A-Za-z0-9._/-]` (field paths are). The empty string matches everything.
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, SelectorError> {
    let mut requirements = Vec::new();
    for term in split_terms(s) {
        if term.trim().is_empty() {
            continue;
        }
        let not_understood = || SelectorError::FieldTerm {
            selector: s.to_string(),
            term: term.to_string(),
        };
        let (field, op, raw) = split_term(term).ok_or_else(not_understood)?;
        let field = field.trim();
        let field_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
        if field.is_empty() || !field.chars().all(field_char) {
            return Err(not_understood());
        }
        let value = unescape_field_value(raw.trim())?;
        requirements.push(FieldRequirement {
            field: field.to_string(),
            op,
            value,
        });
    }
    Ok(FieldSelector { requirements })
}

/// Resolves a dotted field path (`metadata.name`, `spec.nodeName`, `status.phase`) in a
/// JSON object to a string. Strings are returned as they are, booleans and numbers in
/// their JSON spelling; a missing field, `null`, an object or a list is `None`.
pub fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for seg in path.split('.') {
        if seg.is_empty() {
            return None;
        }
        cur = cur.as_object()?.get(seg)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = parse_label_selector(" a = b , c==d,e!=f, g in (x, y) ,h notin (z),i,!j, k>3, l<4")
            .unwrap();
        assert_eq!(
            s.to_string(),
            "a=b,c=d,e!=f,g in (x,y),h notin (z),i,!j,k>3,l<4"
        );
        let l = labels(&[
            ("a", "b"),
            ("c", "d"),
            ("g", "y"),
            ("h", "q"),
            ("i", ""),
            ("k", "5"),
            ("l", "-1"),
        ]);
        assert!(s.matches(&l));
    }

    #[test]
    fn empty_matches_everything() {
        assert!(parse_label_selector("").unwrap().is_empty());
        assert!(parse_label_selector("   ").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn keywords_as_values() {
        let s = parse_label_selector("a=in,b in (notin)").unwrap();
        assert!(s.matches(&labels(&[("a", "in"), ("b", "notin")])));
    }

    #[test]
    fn empty_values() {
        let s = parse_label_selector("a=,b in ()").unwrap();
        assert!(s.matches(&labels(&[("a", ""), ("b", "")])));
        assert!(!s.matches(&labels(&[("a", "x"), ("b", "")])));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "a=b,",
            ",a",
            "a in b",
            "a in (b",
            "a=(b)",
            "a b",
            "!",
            "a=b c",
            "in",
            "a in (b c)",
        ] {
            assert!(parse_label_selector(bad).is_err(), "{bad:?} should fail");
        }
        let e = parse_label_selector("a=b,").unwrap_err().to_string();
        assert_eq!(e, "found '', expected: identifier after ','");
        let e = parse_label_selector("a=b c").unwrap_err().to_string();
        assert_eq!(e, "found 'c', expected: ',' or 'end of string'");
    }

    #[test]
    fn validation_errors() {
        let e = parse_label_selector("a=b b").unwrap_err();
        assert!(matches!(e, SelectorError::Syntax(_)));
        let e = parse_label_selector("a=-b").unwrap_err().to_string();
        assert!(
            e.starts_with("unable to parse requirement: invalid label value: \"-b\""),
            "{e}"
        );
        let e = parse_label_selector("a@=b").unwrap_err().to_string();
        assert!(
            e.starts_with("unable to parse requirement: key: Invalid value: \"a@\""),
            "{e}"
        );
        assert!(parse_label_selector(&format!("a={}", "x".repeat(64))).is_err());
        assert!(parse_label_selector(&format!("a={}", "x".repeat(63))).is_ok());
        assert!(parse_label_selector("example.com/a=b").is_ok());
        assert!(parse_label_selector("Example.com/a=b").is_err());
        assert!(parse_label_selector("/a=b").is_err());
        assert!(parse_label_selector("a/b/c=d").is_err());
        assert!(parse_label_selector("k>x").is_err());
    }

    #[test]
    fn not_in_matches_missing() {
        let s = parse_label_selector("a notin (x),b!=y").unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("a", "x")])));
    }

    #[test]
    fn from_api_selector() {
        let s = LabelSelector::from_api(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("legacy", "1")])));
        assert!(LabelSelector::from_api(&json!({})).unwrap().is_empty());
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
            json!({"matchLabels": {"a": 1}}),
            json!("a=b"),
        ] {
            assert!(LabelSelector::from_api(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_labels() {
        let s = parse_label_selector("app=web").unwrap();
        let m = json!({"app": "web"});
        assert!(s.matches(m.as_object().unwrap()));
    }

    #[test]
    fn field_selectors() {
        let f = parse_field_selector("metadata.name=foo,spec.nodeName!=,status.phase==Running")
            .unwrap();
        assert_eq!(
            f.fields().collect::<Vec<_>>(),
            ["metadata.name", "spec.nodeName", "status.phase"]
        );
        let pod = json!({"metadata": {"name": "foo"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(f.matches_object(&pod));
        assert_eq!(f.exact_match("metadata.name"), Some("foo"));
        let f = parse_field_selector(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(f.requirements()[0].value(), r"a,b=c\d");
        assert_eq!(f.to_string(), r"metadata.name=a\,b\=c\\d");
        assert!(parse_field_selector("a=b=c").is_err());
        assert!(parse_field_selector(r"a=b\x").is_err());
        assert!(parse_field_selector("a=b\\").is_err());
        assert!(parse_field_selector("ab").is_err());
        assert!(parse_field_selector("=b").is_err());
        assert_eq!(
            parse_field_selector("x").unwrap_err().to_string(),
            "invalid selector: 'x'; can't understand 'x'"
        );
        assert!(parse_field_selector("").unwrap().is_empty());
    }

    #[test]
    fn missing_field_is_empty() {
        let f = parse_field_selector("spec.nodeName=").unwrap();
        assert!(f.matches_object(&json!({"spec": {}})));
        let f = parse_field_selector("spec.nodeName!=").unwrap();
        assert!(!f.matches_object(&json!({})));
    }

    #[test]
    fn field_values() {
        let o = json!({"spec": {"unschedulable": true, "replicas": 3, "x": null, "m": {}}});
        assert_eq!(
            field_value(&o, "spec.unschedulable").as_deref(),
            Some("true")
        );
        assert_eq!(field_value(&o, "spec.replicas").as_deref(), Some("3"));
        assert_eq!(field_value(&o, "spec.x"), None);
        assert_eq!(field_value(&o, "spec.m"), None);
        assert_eq!(field_value(&o, "spec..x"), None);
        assert_eq!(field_value(&o, "nope.x"), None);
    }
}
