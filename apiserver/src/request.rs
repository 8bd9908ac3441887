//! Request routing: a URL path and query become a [`Route`] and a [`Query`], following
//! upstream's request-info rules (`/api/v1/...`, `/apis/GROUP/VERSION/...`,
//! `namespaces/NS/RESOURCE/NAME/SUBRESOURCE`, the legacy `/watch/` prefix).

use std::collections::HashMap;

use crate::registry::{self, Resource};

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/livez`, `/readyz` (and their `/...` checks).
    Health,
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/GROUP`.
    Group(String),
    /// `/api/v1` or `/apis/GROUP/VERSION`.
    ResourceList { group: String, version: String },
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Index,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
    OpenApiV3 { group: String, version: String },
    /// A resource path.
    Resource(Target),
    /// `/metrics`.
    Metrics,
}

/// A resource path's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource.
    pub resource: &'static Resource,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `binding`, `log`, `finalize`).
    pub subresource: Option<String>,
    /// The path used the legacy `/watch/` prefix.
    pub watch_prefix: bool,
}

/// Why a path could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Nothing is served there.
    NotFound,
}

/// Routes a URL path.
pub fn route(path: &str) -> Result<Route, RouteError> {
    let path = path.trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => Ok(Route::Health),
        ["version"] => Ok(Route::Version),
        ["metrics"] => Ok(Route::Metrics),
        ["api"] => Ok(Route::CoreVersions),
        ["apis"] => Ok(Route::Groups),
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        ["openapi", "v3"] => Ok(Route::OpenApiV3Index),
        ["openapi", "v3", "api", v] => Ok(Route::OpenApiV3 {
            group: String::new(),
            version: v.to_string(),
        }),
        ["openapi", "v3", "apis", g, v] => Ok(Route::OpenApiV3 {
            group: g.to_string(),
            version: v.to_string(),
        }),
        ["apis", g] if registry::groups().iter().any(|(name, _)| name == g) => {
            Ok(Route::Group(g.to_string()))
        }
        ["api", v] if *v == "v1" => Ok(Route::ResourceList {
            group: String::new(),
            version: v.to_string(),
        }),
        ["apis", g, v]
            if registry::RESOURCES
                .iter()
                .any(|r| r.group == *g && r.version == *v) =>
        {
            Ok(Route::ResourceList {
                group: g.to_string(),
                version: v.to_string(),
            })
        }
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Err(RouteError::NotFound),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Route, RouteError> {
    let (watch_prefix, mut rest) = match rest {
        ["watch", more @ ..] => (true, more),
        other => (false, other),
    };
    let mut namespace = None;
    if let ["namespaces", ns, more @ ..] = rest {
        if more.is_empty() || matches!(more[0], "status" | "finalize") {
            // `namespaces/NS[/status|/finalize]` addresses the namespace object itself.
            if more.len() > 1 || !group.is_empty() || version != "v1" {
                return Err(RouteError::NotFound);
            }
            let resource = registry::find("", "v1", "namespaces").ok_or(RouteError::NotFound)?;
            return Ok(Route::Resource(Target {
                resource,
                namespace: None,
                name: Some(ns.to_string()),
                subresource: more.first().map(|s| s.to_string()),
                watch_prefix,
            }));
        }
        namespace = Some(ns.to_string());
        rest = more;
    }
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(RouteError::NotFound),
    };
    let resource = registry::find(group, version, plural).ok_or(RouteError::NotFound)?;
    if let Some(s) = &sub
        && !resource.subresources.contains(&s.as_str())
    {
        return Err(RouteError::NotFound);
    }
    if !resource.namespaced && namespace.is_some() {
        return Err(RouteError::NotFound);
    }
    Ok(Route::Resource(Target {
        resource,
        namespace,
        name,
        subresource: sub,
        watch_prefix,
    }))
}

/// Parsed query parameters (last value wins, as upstream's `Get`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string, percent-decoding keys and values.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Query(map)
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true`, `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }
}

/// Percent-decoding with `+` as space (form encoding, as Go's `url.ParseQuery`).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path) {
            Ok(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let t = target("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(
            (
                t.resource.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("status"))
        );
        let t = target("/apis/apps/v1/namespaces/x/deployments");
        assert_eq!((t.resource.kind, t.name), ("Deployment", None));
        let t = target("/api/v1/pods");
        assert_eq!(t.namespace, None);
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(
            (t.resource.plural, t.name.as_deref(), t.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let t = target("/api/v1/namespaces/kube-system/finalize");
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("kube-system"), Some("finalize"))
        );
        let t = target("/api/v1/namespaces");
        assert_eq!(t.name, None);
        let t = target("/api/v1/watch/namespaces/default/pods");
        assert!(t.watch_prefix);
        let t = target("/api/v1/nodes/n1/status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert!(route("/api/v1/namespaces/default/nodes").is_err());
        assert!(route("/api/v1/namespaces/default/pods/web/bogus").is_err());
        assert!(route("/apis/nope/v1/things").is_err());
        assert_eq!(route("/apis/apps"), Ok(Route::Group("apps".into())));
        assert_eq!(route("/healthz/etcd"), Ok(Route::Health));
    }

    #[test]
    fn queries_decode() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&limit=5",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
