//! A container's environment, as upstream's kubelet builds it:
//!
//! 1. `envFrom` sources in order (ConfigMaps and Secrets, each key with the source's
//!    prefix; keys that are not environment variable names are skipped);
//! 2. `env` entries in order, each overriding an earlier variable of the same name: a
//!    `value` has its `$(VAR)` references expanded ([`expand`]) against the variables
//!    defined so far and the service variables; a `valueFrom` is resolved from the
//!    downward API (`fieldRef`, `resourceFieldRef`) or a ConfigMap or Secret key;
//! 3. service variables (`<NAME>_SERVICE_HOST`, docker-links `<NAME>_PORT_...`) of the
//!    pod's namespace when `enableServiceLinks` (default true), and always those of the
//!    `kubernetes` Service of `default`, except names the container defines itself.
//!
//! A missing ConfigMap, Secret or key that is not optional is an [`EnvError`], whose text
//! is upstream's and becomes the message of a `CreateContainerConfigError`.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, EnvVarSource, ObjectFieldSelector, Pod, ResourceFieldSelector, Service,
};
use kubeutil::quantity;

/// The waiting reason of a container whose configuration (environment) could not be made.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";

/// Services whose variables every pod gets, from the `default` namespace.
const MASTER_SERVICES: [&str; 1] = ["kubernetes"];

/// Why a container's environment could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A ConfigMap that is not optional does not exist.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A Secret that is not optional does not exist.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A key that is not optional is missing from its ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The key.
        key: String,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
    },
    /// A key that is not optional is missing from its Secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The key.
        key: String,
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
    /// A `fieldRef` of an API version other than v1.
    #[error("unsupported pod version: {0}")]
    UnsupportedVersion(String),
    /// A `fieldRef` path the downward API does not offer.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A subscripted `fieldRef` path other than labels or annotations.
    #[error("field label does not support subscript: {0}")]
    UnsupportedSubscript(String),
    /// A `resourceFieldRef` resource the downward API does not offer.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// A `resourceFieldRef` naming a container the pod does not have.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// A quantity (resource value or divisor) that does not parse.
    #[error("invalid quantity {value:?} in {resource}")]
    InvalidQuantity {
        /// The resource (`limits.cpu`, `divisor`).
        resource: String,
        /// The text.
        value: String,
    },
}

impl EnvError {
    /// The waiting reason a container shows for this error.
    pub fn reason(&self) -> &'static str {
        CREATE_CONTAINER_CONFIG_ERROR
    }
}

/// The environment of `container` in `pod`, in order (see the module documentation).
///
/// `config_maps` and `secrets` look objects up by name in the pod's namespace (Secret
/// values decoded), None when absent; each is asked at most once per name. `services`
/// are the Services of the pod's namespace and the `kubernetes` Service of `default`
/// (Services without a namespace count as the pod's). `node_allocatable` gives the values
/// of unset (or zero) cpu, memory and ephemeral-storage limits for `resourceFieldRef`.
#[allow(clippy::too_many_arguments)]
pub fn container_env(
    pod: &Pod,
    container: &Container,
    node_name: &str,
    host_ip: &str,
    pod_ip: Option<&str>,
    node_allocatable: &BTreeMap<String, String>,
    config_maps: &impl Fn(&str) -> Option<BTreeMap<String, String>>,
    secrets: &impl Fn(&str) -> Option<BTreeMap<String, String>>,
    services: &[Service],
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let service_links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let service_vars = service_env(namespace, service_links, services);
    let service_map: HashMap<&str, &str> = service_vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let mut sources = Sources {
        namespace,
        config_maps,
        secrets,
        config_map_cache: BTreeMap::new(),
        secret_cache: BTreeMap::new(),
    };
    let mut env = EnvList::default();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            if is_env_var_name(&name) {
                env.set(name, v);
            }
        }
    }

    let downward = Downward {
        pod,
        container,
        node_name,
        host_ip,
        pod_ip,
        node_allocatable,
    };
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => {
                let lookup = |name: &str| {
                    env.get(name)
                        .or_else(|| service_map.get(name).copied())
                        .map(str::to_string)
                };
                expand(v, &lookup)
            }
            (_, Some(from)) => match downward.resolve(from, &mut sources)? {
                Some(v) => v,
                // An optional reference to something missing defines nothing.
                None => continue,
            },
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }

    let mut out = env.vars;
    let defined: HashSet<String> = out.iter().map(|(k, _)| k.clone()).collect();
    out.extend(
        service_vars
            .into_iter()
            .filter(|(k, _)| !defined.contains(k)),
    );
    Ok(out)
}

/// Expands `$(VAR)` references in `s` as upstream does: a reference to a defined variable
/// becomes its value, one to an undefined variable stays as written; `$$` is a literal
/// `$` (so `$$(VAR)` is the text `$(VAR)`); any other `$`, and a `$(` never closed, stay as
/// they are. Values are not expanded again, and references do not nest: the name runs to
/// the first `)`.
pub fn expand(s: &str, vars: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.chars().next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after[1..].find(')') {
                Some(end) => {
                    let name = &after[1..1 + end];
                    match vars(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands `$(VAR)` references in a command or its arguments against an environment.
pub fn expand_all(args: &[String], env: &[(String, String)]) -> Vec<String> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| map.get(name).map(|v| v.to_string());
    args.iter().map(|a| expand(a, &lookup)).collect()
}

/// Whether `name` may be an environment variable name: non-empty printable ASCII
/// without `=` (upstream's relaxed rule).
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The service variables of a pod in `namespace`: for each Service with a cluster IP,
/// those of the pod's namespace when `service_links`, and `kubernetes` of `default`
/// always (a Service of the same name in the pod's namespace takes its place), in the
/// order of the Services' names.
pub fn service_env(
    namespace: &str,
    service_links: bool,
    services: &[Service],
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        if !has_cluster_ip(svc) {
            continue;
        }
        let Some(name) = svc.metadata.name.as_deref() else {
            continue;
        };
        let ns = svc.metadata.namespace.as_deref().unwrap_or(namespace);
        if ns == namespace && service_links {
            chosen.insert(name, svc);
        } else if ns == "default" && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(svc);
        }
    }
    let mut vars = EnvList::default();
    for (name, svc) in chosen {
        for (k, v) in service_vars(name, svc) {
            vars.set(k, v);
        }
    }
    vars.vars
}

fn has_cluster_ip(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// One Service's variables: host, first port, named ports, then docker-links variables
/// per port.
fn service_vars(name: &str, svc: &Service) -> Vec<(String, String)> {
    let spec = svc.spec.clone().unwrap_or_default();
    let ip = spec.cluster_ip.unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let prefix = env_name(name);
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), ip.clone())];
    if let Some(first) = ports.first() {
        let base = format!("{prefix}_SERVICE_PORT");
        out.push((base.clone(), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{base}_{}", env_name(pn)), p.port.to_string()));
            }
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = p
            .protocol
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        let lower = proto.to_lowercase();
        let host_port = if ip.contains(':') {
            format!("[{ip}]:{}", p.port)
        } else {
            format!("{ip}:{}", p.port)
        };
        let url = format!("{lower}://{host_port}");
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((pp.clone(), url));
        out.push((format!("{pp}_PROTO"), lower));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.clone()));
    }
    out
}

/// A Service name as a variable name: upper case, `-` as `_`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// Variables in the order first defined, a redefinition replacing the value in place.
#[derive(Debug, Default)]
struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

/// ConfigMap and Secret lookups, each name asked once.
struct Sources<'a, C, S> {
    namespace: &'a str,
    config_maps: &'a C,
    secrets: &'a S,
    config_map_cache: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secret_cache: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl<C, S> Sources<'_, C, S>
where
    C: Fn(&str) -> Option<BTreeMap<String, String>>,
    S: Fn(&str) -> Option<BTreeMap<String, String>>,
{
    fn config_map(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        let f = self.config_maps;
        self.config_map_cache
            .entry(name.to_string())
            .or_insert_with(|| f(name))
            .clone()
    }

    fn secret(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        let f = self.secrets;
        self.secret_cache
            .entry(name.to_string())
            .or_insert_with(|| f(name))
            .clone()
    }
}

/// What the downward API and key references read from.
struct Downward<'a> {
    pod: &'a Pod,
    container: &'a Container,
    node_name: &'a str,
    host_ip: &'a str,
    pod_ip: Option<&'a str>,
    node_allocatable: &'a BTreeMap<String, String>,
}

impl Downward<'_> {
    /// The value of a `valueFrom`, None for an optional reference to something missing.
    fn resolve<C, S>(
        &self,
        from: &EnvVarSource,
        sources: &mut Sources<'_, C, S>,
    ) -> Result<Option<String>, EnvError>
    where
        C: Fn(&str) -> Option<BTreeMap<String, String>>,
        S: Fn(&str) -> Option<BTreeMap<String, String>>,
    {
        if let Some(f) = &from.field_ref {
            return self.field(f).map(Some);
        }
        if let Some(r) = &from.resource_field_ref {
            return self.resource(r).map(Some);
        }
        let namespace = sources.namespace.to_string();
        if let Some(r) = &from.config_map_key_ref {
            let optional = r.optional == Some(true);
            let Some(data) = sources.config_map(&r.name) else {
                return if optional {
                    Ok(None)
                } else {
                    Err(EnvError::ConfigMapNotFound(r.name.clone()))
                };
            };
            return match data.get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(EnvError::ConfigMapKeyNotFound {
                    key: r.key.clone(),
                    namespace,
                    name: r.name.clone(),
                }),
            };
        }
        if let Some(r) = &from.secret_key_ref {
            let optional = r.optional == Some(true);
            let Some(data) = sources.secret(&r.name) else {
                return if optional {
                    Ok(None)
                } else {
                    Err(EnvError::SecretNotFound(r.name.clone()))
                };
            };
            return match data.get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(EnvError::SecretKeyNotFound {
                    key: r.key.clone(),
                    namespace,
                    name: r.name.clone(),
                }),
            };
        }
        Ok(Some(String::new()))
    }

    /// A `fieldRef` value.
    fn field(&self, sel: &ObjectFieldSelector) -> Result<String, EnvError> {
        let version = sel
            .api_version
            .as_deref()
            .filter(|v| !v.is_empty())
            .unwrap_or("v1");
        if version != "v1" {
            return Err(EnvError::UnsupportedVersion(version.to_string()));
        }
        let meta = &self.pod.metadata;
        let path = sel.field_path.as_str();
        if let Some((base, key)) = split_subscript(path) {
            let map = match base {
                "metadata.labels" => &meta.labels,
                "metadata.annotations" => &meta.annotations,
                _ => return Err(EnvError::UnsupportedSubscript(path.to_string())),
            };
            return Ok(map
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default());
        }
        let spec = self.pod.spec.as_ref();
        let pod_ip = self
            .pod_ip
            .filter(|ip| !ip.is_empty())
            .or_else(|| {
                spec.and_then(|s| s.host_network)
                    .unwrap_or(false)
                    .then_some(self.host_ip)
            })
            .unwrap_or_default();
        Ok(match path {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "metadata.labels" => format_map(meta.labels.as_ref()),
            "metadata.annotations" => format_map(meta.annotations.as_ref()),
            "spec.nodeName" | "spec.host" => spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.node_name.to_string()),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.hostIP" | "status.hostIPs" => self.host_ip.to_string(),
            "status.podIP" | "status.podIPs" => pod_ip.to_string(),
            _ => return Err(EnvError::UnsupportedField(path.to_string())),
        })
    }

    /// A `resourceFieldRef` value: the quantity in whole units of the divisor (default 1),
    /// rounded up; cpu counted in millicores, the others in units.
    fn resource(&self, sel: &ResourceFieldSelector) -> Result<String, EnvError> {
        let container = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => self.container,
            Some(name) => self
                .pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .find(|c| c.name == name)
                .ok_or_else(|| EnvError::ContainerNotFound(name.to_string()))?,
        };
        let unsupported = || EnvError::UnsupportedResource(sel.resource.clone());
        let (kind, name) = sel.resource.split_once('.').ok_or_else(unsupported)?;
        let known = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !known || !matches!(kind, "limits" | "requests") {
            return Err(unsupported());
        }
        let res = container.resources.as_ref();
        let limit = res
            .and_then(|r| r.limits.as_ref())
            .and_then(|m| m.get(name))
            .map(|q| q.0.clone());
        let value = if kind == "limits" {
            let unset = limit
                .as_deref()
                .is_none_or(|l| quantity::quantity_milli(l) == Some(0));
            if unset && !name.starts_with("hugepages-") {
                self.node_allocatable.get(name).cloned().or(limit)
            } else {
                limit
            }
        } else {
            res.and_then(|r| r.requests.as_ref())
                .and_then(|m| m.get(name))
                .map(|q| q.0.clone())
                .or(limit)
        };
        let value = value.unwrap_or_else(|| "0".into());
        let divisor = sel
            .divisor
            .as_ref()
            .map(|q| q.0.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "1".into());
        let invalid = |resource: &str, value: &str| EnvError::InvalidQuantity {
            resource: resource.to_string(),
            value: value.to_string(),
        };
        let parse = |text: &str, what: &str| {
            let milli = quantity::quantity_milli(text).ok_or_else(|| invalid(what, text))?;
            Ok::<i128, EnvError>(if name == "cpu" {
                milli
            } else {
                // Whole units, rounded up.
                milli.div_euclid(1000) + i128::from(milli.rem_euclid(1000) != 0)
            })
        };
        let v = parse(&value, &sel.resource)?;
        let mut d = parse(&divisor, "divisor")?;
        if d == 0 {
            d = if name == "cpu" { 1000 } else { 1 };
        }
        Ok(ceil_div(v, d).to_string())
    }
}

/// `a / b` rounded toward positive infinity (`b` non-zero).
fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

/// A map as the downward API renders it: `key="value"` lines in key order.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", crate::status::go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}
