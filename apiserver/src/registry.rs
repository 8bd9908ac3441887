//! The table of served resources: group, version, kind, names, scope, subresources and the
//! fields each kind can be selected by. Handlers are generic; everything kind-specific that
//! is data lives here (defaulting and validation, which are code, live in `admission`).

/// One served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name, used in paths.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Short names (`po`, `svc`, ...).
    pub short_names: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Subresources (`status`, `scale`, `binding`, `log`, `finalize`).
    pub subresources: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Field selectors supported besides `metadata.name` and `metadata.namespace`.
    pub fields: &'static [&'static str],
}

/// Verbs every resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The list kind (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether the kind has a status subresource (status is then ignored on the main
    /// resource's updates).
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The storage key prefix of this resource, ending in `/`.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }

    /// The key prefix of one namespace (or of all objects for cluster-scoped kinds).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.namespace_prefix(namespace))
    }

    /// Whether `field` may be used in a field selector.
    pub fn selectable(&self, field: &str) -> bool {
        field == "metadata.name" || (field == "metadata.namespace") || self.fields.contains(&field)
    }
}

const ALL: &[&str] = &["all"];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, [$($short:expr),*], $ns:expr, [$($sub:expr),*], $cats:expr, [$($field:expr),*]) => {
        Resource {
            group: $group, version: $version, kind: $kind, plural: $plural, singular: $singular,
            short_names: &[$($short),*], namespaced: $ns, subresources: &[$($sub),*],
            categories: $cats, fields: &[$($field),*],
        }
    };
}

/// Every served resource.
pub static RESOURCES: &[Resource] = &[
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        ["ns"],
        false,
        ["status", "finalize"],
        &[],
        ["status.phase"]
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        ["po"],
        true,
        ["status", "binding", "log"],
        ALL,
        [
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName"
        ]
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        ["svc"],
        true,
        ["status"],
        ALL,
        ["spec.clusterIP", "spec.type"]
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        ["ep"],
        true,
        [],
        &[],
        []
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        ["no"],
        false,
        ["status"],
        &[],
        ["spec.unschedulable"]
    ),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        ["cm"],
        true,
        [],
        &[],
        []
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        [],
        true,
        [],
        &[],
        ["type"]
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        ["ev"],
        true,
        [],
        &[],
        [
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type"
        ]
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true,
        [],
        &[],
        []
    ),
    res!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        ["pv"],
        false,
        ["status"],
        &[],
        []
    ),
    res!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ["pvc"],
        true,
        ["status"],
        &[],
        []
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true,
        ["status", "scale"],
        ALL,
        []
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true,
        ["status", "scale"],
        ALL,
        ["status.replicas"]
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ["ds"],
        true,
        ["status"],
        ALL,
        []
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        [],
        true,
        [],
        &[],
        []
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        [],
        true,
        [],
        &[],
        []
    ),
];

/// The resource served at `group`/`version`/`plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind in an apiVersion (`apps/v1`, `Deployment`).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The served groups (excluding core), each with its versions, in a stable order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            deploy.key(Some("ns1"), "d"),
            "/registry/apps/deployments/ns1/d"
        );
        let nodes = by_kind("v1", "Node").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        assert!(!nodes.namespaced);
        assert!(pods.selectable("spec.nodeName") && !pods.selectable("spec.foo"));
        assert_eq!(groups()[0], ("apps", vec!["v1"]));
    }

    #[test]
    fn plural_names_are_unique_per_group() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
    }
}
