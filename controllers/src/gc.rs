//! The garbage collector: owner references over a generic object graph.
//!
//! The input is a snapshot of every watched object ([`ObjectRef`]: identity, owner
//! references, deletion timestamp, finalizers) and the kinds that are watched
//! ([`KindInfo`]: whether each is namespaced). [`plan`] returns the writes that move the
//! graph on, following kube-controller-manager's garbage collector:
//!
//! - **Owner resolution.** An owner reference resolves among objects of the referenced
//!   group and kind (the API version's group; versions are interchangeable) by uid: in the
//!   dependent's namespace for namespaced kinds, cluster-wide for cluster-scoped ones. An
//!   owner is *absent* only when no such object carries the uid — an object with that uid
//!   in another namespace does not count. A reference to a kind that is not watched, or
//!   from a cluster-scoped object to a namespaced kind, cannot be resolved, and the
//!   dependent is left alone.
//! - **Background collection.** A dependent whose owners are all absent is deleted (with the
//!   propagation its own finalizers ask for, else `Background`). A dependent with at least
//!   one live owner loses only its references to absent owners.
//! - **Orphan.** An owner being deleted with the `orphan` finalizer: its dependents lose
//!   their reference to it, then the finalizer is removed (in that order).
//! - **Foreground.** An owner being deleted with the `foregroundDeletion` finalizer: its
//!   dependents are deleted (or, if they have another live owner, lose the reference);
//!   dependents that have dependents of their own are deleted in the foreground too. Once no
//!   dependent with `blockOwnerDeletion: true` remains, the finalizer is removed. A
//!   dependent whose own dependents are already deleting in the foreground first gets its
//!   references unblocked, to break cycles, as upstream does.
//! - Objects being deleted (and not deleting their dependents) are not acted on as
//!   dependents.
//!
//! The snapshot may lag the API: the runner deletes with a uid precondition and, like
//! upstream, should confirm an owner is really gone (a live GET) before deleting its
//! dependents.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

/// Finalizer asking for dependents to be orphaned.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Finalizer asking for dependents to be deleted first.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// One watched object, as the garbage collector sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectRef {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
    /// `metadata.ownerReferences`.
    pub owner_refs: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp`.
    pub deletion_timestamp: Option<Time>,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
}

impl ObjectRef {
    /// The garbage collector's view of an object with this metadata.
    pub fn from_meta(api_version: &str, kind: &str, meta: &ObjectMeta) -> Self {
        ObjectRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            owner_refs: meta.owner_references.clone().unwrap_or_default(),
            deletion_timestamp: meta.deletion_timestamp.clone(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    /// The object's identity, for actions.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    fn deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// Being deleted in the foreground (waiting for its dependents).
    fn deleting_dependents(&self) -> bool {
        self.deleting() && self.has_finalizer(FINALIZER_FOREGROUND)
    }
}

/// Which object an action is for (writes should carry the uid as a precondition).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
}

/// A watched kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindInfo {
    /// `group/version` (or `v1`); only the group is compared.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

impl KindInfo {
    /// A namespaced kind.
    pub fn namespaced(api_version: &str, kind: &str) -> Self {
        KindInfo {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaced: true,
        }
    }

    /// A cluster-scoped kind.
    pub fn cluster(api_version: &str, kind: &str) -> Self {
        KindInfo {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaced: false,
        }
    }
}

/// A `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete now; dependents are collected afterwards.
    Background,
    /// Delete dependents first.
    Foreground,
    /// Keep dependents, dropping their references.
    Orphan,
}

impl Propagation {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        }
    }
}

/// One write the garbage collector needs. Apply in order; stop at the first failure and
/// re-plan from a fresh snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcAction {
    /// Delete the object (precondition: its uid) with this propagation policy.
    Delete {
        /// The object.
        object: ObjectKey,
        /// The propagation policy.
        propagation: Propagation,
    },
    /// Remove the owner references with these uids from the object.
    RemoveOwnerRefs {
        /// The dependent.
        object: ObjectKey,
        /// The owners' uids.
        owner_uids: Vec<String>,
    },
    /// Set `blockOwnerDeletion: false` on all of the object's owner references.
    UnblockOwnerRefs {
        /// The dependent.
        object: ObjectKey,
    },
    /// Remove a finalizer from the object.
    RemoveFinalizer {
        /// The object.
        object: ObjectKey,
        /// `orphan` or `foregroundDeletion`.
        finalizer: String,
    },
}

fn group(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map_or("", |(group, _version)| group)
}

/// How one owner reference resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolved {
    /// The owner is this object (index into the snapshot).
    Present(usize),
    /// No such owner.
    Absent,
    /// Not decidable (unwatched kind, or an invalid reference).
    Unknown,
}

struct Graph<'a> {
    /// (group, kind) -> namespaced.
    kinds: HashMap<(&'a str, &'a str), bool>,
    /// (group, kind, namespace or "", uid) -> index.
    index: HashMap<(&'a str, &'a str, &'a str, &'a str), usize>,
    /// owner index -> (dependent index, reference index).
    dependents: Vec<Vec<(usize, usize)>>,
}

impl<'a> Graph<'a> {
    fn new(objects: &'a [ObjectRef], kinds: &'a [KindInfo]) -> Self {
        let kinds: HashMap<(&str, &str), bool> = kinds
            .iter()
            .map(|k| ((group(&k.api_version), k.kind.as_str()), k.namespaced))
            .collect();
        let index = objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let ns = o.namespace.as_deref().unwrap_or_default();
                (
                    (group(&o.api_version), o.kind.as_str(), ns, o.uid.as_str()),
                    i,
                )
            })
            .collect();
        let mut g = Graph {
            kinds,
            index,
            dependents: vec![Vec::new(); objects.len()],
        };
        for (d, obj) in objects.iter().enumerate() {
            for (r, owner_ref) in obj.owner_refs.iter().enumerate() {
                if let Resolved::Present(o) = g.resolve(obj, owner_ref) {
                    g.dependents[o].push((d, r));
                }
            }
        }
        g
    }

    fn resolve(&self, dependent: &ObjectRef, r: &OwnerReference) -> Resolved {
        let g = group(&r.api_version);
        let Some(&namespaced) = self.kinds.get(&(g, r.kind.as_str())) else {
            return Resolved::Unknown;
        };
        let ns = match (namespaced, dependent.namespace.as_deref()) {
            (false, _) => "",
            (true, Some(ns)) => ns,
            (true, None) => return Resolved::Unknown,
        };
        match self.index.get(&(g, r.kind.as_str(), ns, r.uid.as_str())) {
            Some(&i) => Resolved::Present(i),
            None => Resolved::Absent,
        }
    }
}

/// The writes that move the object graph on. See the module doc.
pub fn plan(objects: &[ObjectRef], kinds: &[KindInfo]) -> Vec<GcAction> {
    let g = Graph::new(objects, kinds);
    let mut actions = Vec::new();

    // Owners being deleted with a GC finalizer.
    for (o, owner) in objects.iter().enumerate() {
        if !owner.deleting() {
            continue;
        }
        if owner.has_finalizer(FINALIZER_ORPHAN) {
            // Dependents first, one patch each, then the finalizer.
            let mut seen = Vec::new();
            for &(d, _) in &g.dependents[o] {
                if !seen.contains(&d) {
                    seen.push(d);
                    actions.push(GcAction::RemoveOwnerRefs {
                        object: objects[d].key(),
                        owner_uids: vec![owner.uid.clone()],
                    });
                }
            }
            actions.push(GcAction::RemoveFinalizer {
                object: owner.key(),
                finalizer: FINALIZER_ORPHAN.into(),
            });
        } else if owner.has_finalizer(FINALIZER_FOREGROUND) {
            let blocked = g.dependents[o]
                .iter()
                .any(|&(d, r)| objects[d].owner_refs[r].block_owner_deletion == Some(true));
            if !blocked {
                actions.push(GcAction::RemoveFinalizer {
                    object: owner.key(),
                    finalizer: FINALIZER_FOREGROUND.into(),
                });
            }
        }
    }

    // Dependents.
    for (d, dep) in objects.iter().enumerate() {
        if dep.owner_refs.is_empty() || dep.deleting() {
            continue;
        }
        let mut solid = false;
        let mut drop_uids: Vec<String> = Vec::new();
        let mut waiting = false;
        let mut unknown = false;
        for r in &dep.owner_refs {
            match g.resolve(dep, r) {
                Resolved::Unknown => unknown = true,
                Resolved::Absent => drop_uids.push(r.uid.clone()),
                Resolved::Present(o) => {
                    let owner = &objects[o];
                    if owner.deleting_dependents() && !owner.has_finalizer(FINALIZER_ORPHAN) {
                        waiting = true;
                        drop_uids.push(r.uid.clone());
                    } else {
                        solid = true;
                    }
                }
            }
        }
        if unknown || drop_uids.is_empty() {
            continue;
        }
        if solid {
            drop_uids.sort();
            drop_uids.dedup();
            actions.push(GcAction::RemoveOwnerRefs {
                object: dep.key(),
                owner_uids: drop_uids,
            });
            continue;
        }
        let has_dependents = !g.dependents[d].is_empty();
        if waiting && has_dependents {
            let cycle = g.dependents[d]
                .iter()
                .any(|&(x, _)| objects[x].deleting_dependents());
            let blocking = dep
                .owner_refs
                .iter()
                .any(|r| r.block_owner_deletion == Some(true));
            if cycle && blocking {
                actions.push(GcAction::UnblockOwnerRefs { object: dep.key() });
            }
            actions.push(GcAction::Delete {
                object: dep.key(),
                propagation: Propagation::Foreground,
            });
            continue;
        }
        let propagation = if dep.has_finalizer(FINALIZER_ORPHAN) {
            Propagation::Orphan
        } else if dep.has_finalizer(FINALIZER_FOREGROUND) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        actions.push(GcAction::Delete {
            object: dep.key(),
            propagation,
        });
    }
    actions
}

/// The dependents of each object in the snapshot that resolve to it, by owner uid (for
/// runners and diagnostics).
pub fn dependents(objects: &[ObjectRef], kinds: &[KindInfo]) -> BTreeMap<String, Vec<ObjectKey>> {
    let g = Graph::new(objects, kinds);
    let mut out = BTreeMap::new();
    for (o, deps) in g.dependents.iter().enumerate() {
        if deps.is_empty() {
            continue;
        }
        let mut keys: Vec<ObjectKey> = deps.iter().map(|&(d, _)| objects[d].key()).collect();
        keys.sort();
        keys.dedup();
        out.insert(objects[o].uid.clone(), keys);
    }
    out
}
