//! Which lists of built-in kinds a strategic merge patch merges, and by which key.
//!
//! Upstream reads this from the Go struct tags (`patchStrategy:"merge"`,
//! `patchMergeKey:"name"`). Here it is data: per kind, a list of dotted field paths, where
//! `[]` marks "inside each item of this list" (`spec.containers[].env`). Shared shapes
//! (object metadata, a pod spec, a container) are written once and mounted under a
//! prefix with [`Rule::Under`]. Any list not named here is replaced whole by a patch, as
//! upstream does for lists without a strategy (`tolerations`, `taints`, `subsets`, ...).
//!
//! To teach the patcher a new list, add a [`Rule::List`] to the kind's table (or to a
//! shared shape).

/// How a strategic merge patch treats one list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListStrategy {
    /// The patch's list replaces the object's (the default).
    Replace,
    /// Items are objects merged by the value of this key: matching items merge
    /// recursively, new ones are added.
    MergeByKey(&'static str),
    /// Items are scalars; the patch's are added to the object's as a set.
    MergePrimitives,
}

/// One entry of a strategy table.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// The list at this path (relative to where the table is mounted) has this strategy.
    List(&'static str, ListStrategy),
    /// These rules apply below this path.
    Under(&'static str, &'static [Rule]),
}

const fn by(path: &'static str, key: &'static str) -> Rule {
    Rule::List(path, ListStrategy::MergeByKey(key))
}

const fn set(path: &'static str) -> Rule {
    Rule::List(path, ListStrategy::MergePrimitives)
}

/// `metav1.ObjectMeta`.
const OBJECT_META: &[Rule] = &[set("finalizers"), by("ownerReferences", "uid")];

/// `core/v1.Container` (and `EphemeralContainer`, which shares its fields).
const CONTAINER: &[Rule] = &[
    by("ports", "containerPort"),
    by("env", "name"),
    by("volumeMounts", "mountPath"),
    by("volumeDevices", "devicePath"),
];

/// `core/v1.PodSpec`.
const POD_SPEC: &[Rule] = &[
    by("containers", "name"),
    by("initContainers", "name"),
    by("ephemeralContainers", "name"),
    Rule::Under("containers[]", CONTAINER),
    Rule::Under("initContainers[]", CONTAINER),
    Rule::Under("ephemeralContainers[]", CONTAINER),
    by("volumes", "name"),
    by("imagePullSecrets", "name"),
    by("hostAliases", "ip"),
    by("topologySpreadConstraints", "topologyKey"),
    by("resourceClaims", "name"),
    by("schedulingGates", "name"),
];

/// `core/v1.PodTemplateSpec`.
const POD_TEMPLATE: &[Rule] = &[
    Rule::Under("metadata", OBJECT_META),
    Rule::Under("spec", POD_SPEC),
];

/// `status.conditions` keyed by `type`, as most built-in statuses have.
const CONDITIONS: Rule = by("status.conditions", "type");

const POD: &[Rule] = &[
    Rule::Under("spec", POD_SPEC),
    CONDITIONS,
    by("status.podIPs", "ip"),
    by("status.hostIPs", "ip"),
];

const WORKLOAD: &[Rule] = &[Rule::Under("spec.template", POD_TEMPLATE), CONDITIONS];

const CRON_JOB: &[Rule] = &[Rule::Under("spec.jobTemplate.spec.template", POD_TEMPLATE)];

const POD_TEMPLATE_KIND: &[Rule] = &[Rule::Under("template", POD_TEMPLATE)];

const SERVICE: &[Rule] = &[by("spec.ports", "port"), CONDITIONS];

const NODE: &[Rule] = &[
    set("spec.podCIDRs"),
    by("status.addresses", "type"),
    CONDITIONS,
];

const SERVICE_ACCOUNT: &[Rule] = &[by("secrets", "name")];

const CONDITIONS_ONLY: &[Rule] = &[CONDITIONS];

/// Rules for every kind.
const ALL_KINDS: &[Rule] = &[Rule::Under("metadata", OBJECT_META)];

/// Per-kind rules, on top of [`ALL_KINDS`].
const KINDS: &[(&str, &[Rule])] = &[
    ("Pod", POD),
    ("PodTemplate", POD_TEMPLATE_KIND),
    ("Deployment", WORKLOAD),
    ("ReplicaSet", WORKLOAD),
    ("DaemonSet", WORKLOAD),
    ("StatefulSet", WORKLOAD),
    ("ReplicationController", WORKLOAD),
    ("Job", WORKLOAD),
    ("CronJob", CRON_JOB),
    ("Service", SERVICE),
    ("Node", NODE),
    ("ServiceAccount", SERVICE_ACCOUNT),
    ("Namespace", CONDITIONS_ONLY),
    ("PersistentVolumeClaim", CONDITIONS_ONLY),
];

fn lookup(rules: &[Rule], path: &str) -> Option<ListStrategy> {
    rules.iter().find_map(|rule| match *rule {
        Rule::List(p, strategy) => (p == path).then_some(strategy),
        Rule::Under(prefix, inner) => {
            let rest = path.strip_prefix(prefix)?.strip_prefix('.')?;
            lookup(inner, rest)
        }
    })
}

/// The strategy for the list at dotted `path` (items of lists written `name[]`) in an
/// object of `kind`; [`ListStrategy::Replace`] for anything the table does not name.
pub fn list_strategy(kind: &str, path: &str) -> ListStrategy {
    let per_kind = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, rules)| *rules)
        .unwrap_or(&[]);
    lookup(ALL_KINDS, path)
        .or_else(|| lookup(per_kind, path))
        .unwrap_or(ListStrategy::Replace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        use ListStrategy::*;
        assert_eq!(list_strategy("Pod", "spec.containers"), MergeByKey("name"));
        assert_eq!(
            list_strategy("Pod", "spec.containers[].ports"),
            MergeByKey("containerPort")
        );
        assert_eq!(
            list_strategy("Pod", "spec.initContainers[].env"),
            MergeByKey("name")
        );
        assert_eq!(list_strategy("Pod", "spec.tolerations"), Replace);
        assert_eq!(
            list_strategy("Deployment", "spec.template.spec.containers[].volumeMounts"),
            MergeByKey("mountPath")
        );
        assert_eq!(
            list_strategy("CronJob", "spec.jobTemplate.spec.template.spec.volumes"),
            MergeByKey("name")
        );
        assert_eq!(list_strategy("Service", "spec.ports"), MergeByKey("port"));
        assert_eq!(
            list_strategy("ConfigMap", "metadata.finalizers"),
            MergePrimitives
        );
        assert_eq!(
            list_strategy("Lease", "metadata.ownerReferences"),
            MergeByKey("uid")
        );
        assert_eq!(
            list_strategy("Node", "status.addresses"),
            MergeByKey("type")
        );
        assert_eq!(list_strategy("Node", "spec.taints"), Replace);
        assert_eq!(list_strategy("EndpointSlice", "endpoints"), Replace);
        assert_eq!(
            list_strategy("Deployment", "status.conditions"),
            MergeByKey("type")
        );
        assert_eq!(list_strategy("Pod", "spec.containers[]"), Replace);
        assert_eq!(list_strategy("Pod", "specx.containers"), Replace);
    }
}
