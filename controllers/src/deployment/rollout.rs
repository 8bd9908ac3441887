//! The steps of a Deployment sync that move ReplicaSets: finding or creating the new
//! ReplicaSet, the rolling and recreate strategies, proportional scaling and history cleanup.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeutil::selector::LabelSelector;

use super::util::{self, spec_replicas, status_available};
use super::{
    DEFAULT_REVISION_HISTORY_LIMIT, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Run, condition,
    controller_ref, reason,
};
use crate::podutil;

/// Name collisions tolerated before giving up on creating the new ReplicaSet in this sync.
const MAX_COLLISIONS: i32 = 100;

impl Run<'_> {
    // -------------------------------------------------------------- the new ReplicaSet

    /// The oldest live ReplicaSet whose template is the Deployment's (hash label aside).
    fn find_new(&self) -> Option<usize> {
        let mut candidates: Vec<usize> = self.live().collect();
        candidates.sort_by(|&a, &b| util::by_creation(&self.rss[a], &self.rss[b]));
        candidates.into_iter().find(|&i| {
            util::equal_ignore_hash(&util::rs_template(&self.rss[i]), &self.spec.template)
        })
    }

    /// Finds the new ReplicaSet and brings its revision and annotations up to date (creating
    /// it when `create` and there is none). Returns its index.
    pub(super) fn sync_revision(&mut self, create: bool) -> Option<usize> {
        let new = self.find_new();
        let max_old_revision = self
            .old(new)
            .into_iter()
            .map(|i| util::revision(&self.rss[i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        let (desired, max) = (self.replicas, self.replicas + self.max_surge());
        if let Some(i) = new {
            let min_ready = self.spec.min_ready_seconds;
            let rs = &mut self.rss[i];
            let mut changed =
                util::set_new_rs_annotations(self.d, rs, new_revision, true, desired, max);
            let rs_spec = rs.spec.get_or_insert_with(Default::default);
            if rs_spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
                rs_spec.min_ready_seconds = min_ready;
                changed = true;
            }
            let revision = util::annotation(&rs.metadata, REVISION_ANNOTATION)
                .unwrap_or_default()
                .to_string();
            if changed {
                self.touch(i);
            }
            self.set_deployment_revision(revision);
            if self.has_progress_deadline()
                && super::status::get_condition(&self.status, condition::PROGRESSING).is_none()
            {
                let name = util::name_of(&self.rss[i].metadata);
                self.set_condition(
                    condition::PROGRESSING,
                    "True",
                    reason::FOUND_NEW_RS,
                    format!("Found new replica set {name:?}"),
                );
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        self.create_new_rs(new_revision)
    }

    fn set_deployment_revision(&mut self, revision: String) {
        let current = self
            .revision
            .as_deref()
            .or_else(|| util::annotation(&self.d.metadata, REVISION_ANNOTATION));
        if current != Some(revision.as_str()) {
            self.revision = Some(revision);
        }
    }

    /// Builds the new ReplicaSet `<deployment>-<hash>` (a hash whose name is free) sized for
    /// the strategy, and adds it to the working set.
    fn create_new_rs(&mut self, new_revision: i64) -> Option<usize> {
        let mut collisions = self.status.collision_count;
        let (name, hash) = loop {
            let hash = util::template_hash(&self.spec.template, collisions);
            let name = format!("{}-{hash}", self.name());
            if !self.taken_names.contains(&name) {
                break (name, hash);
            }
            let next = collisions.unwrap_or(0).saturating_add(1);
            if next > MAX_COLLISIONS {
                return None;
            }
            collisions = Some(next);
        };
        self.status.collision_count = collisions;

        let mut template = self.spec.template.clone();
        let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        template_meta
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let mut selector = self.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: template_meta.labels.clone(),
                owner_references: Some(vec![controller_ref(self.d)]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.rss.push(rs.clone());
        let i = self.rss.len() - 1;
        let replicas = self.new_rs_new_replicas(i);
        util::set_spec_replicas(&mut rs, replicas);
        let (desired, max) = (self.replicas, self.replicas + self.max_surge());
        util::set_new_rs_annotations(self.d, &mut rs, new_revision, false, desired, max);
        self.rss[i] = rs;
        self.taken_names.insert(name.clone());

        if self.has_progress_deadline() {
            self.set_condition(
                condition::PROGRESSING,
                "True",
                reason::NEW_RS_CREATED,
                format!("Created new replica set {name:?}"),
            );
        }
        self.set_deployment_revision(new_revision.to_string());
        Some(i)
    }

    /// How many replicas the new ReplicaSet may have now: under `RollingUpdate` as many more
    /// as fit under `replicas + maxSurge` in all (never above `replicas`); under `Recreate`
    /// all of them.
    fn new_rs_new_replicas(&self, new: usize) -> i32 {
        let current = spec_replicas(&self.rss[new]);
        match util::strategy(self.d, self.replicas) {
            util::Strategy::Rolling { max_surge, .. } => {
                let total: i32 = self.live().map(|i| spec_replicas(&self.rss[i])).sum();
                let max_total = self.replicas + max_surge;
                if total >= max_total {
                    return current;
                }
                current + (max_total - total).min(self.replicas - current)
            }
            util::Strategy::Recreate => self.replicas,
            util::Strategy::Unknown => 0,
        }
    }

    // -------------------------------------------------------------- scaling

    /// Sets a ReplicaSet's size and replica annotations; true when the size changed.
    fn scale_rs(&mut self, i: usize, replicas: i32) -> bool {
        let (desired, max) = (self.replicas, self.replicas + self.max_surge());
        let rs = &mut self.rss[i];
        let resize = spec_replicas(rs) != replicas;
        if resize || util::replicas_annotations_need_update(rs, desired, max) {
            util::set_spec_replicas(rs, replicas);
            util::set_replicas_annotations(rs, desired, max);
            self.touch(i);
        }
        resize
    }

    /// Whether `replicas` changed since the active ReplicaSets were last sized.
    pub(super) fn is_scaling_event(&mut self) -> bool {
        self.sync_revision(false);
        let replicas = self.replicas;
        self.live()
            .filter(|&i| spec_replicas(&self.rss[i]) > 0)
            .any(|i| util::desired_replicas_annotation(&self.rss[i]).is_some_and(|d| d != replicas))
    }

    /// Paused Deployments and changes of `replicas`: resize, clean up history when paused,
    /// and update the status without judging progress.
    pub(super) fn scale_only(&mut self) {
        let new = self.sync_revision(false);
        self.scale(new);
        if self.spec.paused == Some(true) {
            self.cleanup(new);
        }
        self.sync_deployment_status(new);
    }

    /// Brings the total size of the active ReplicaSets to the Deployment's, spreading a
    /// change proportionally over them during a rolling update.
    fn scale(&mut self, new: Option<usize>) {
        let old = self.old(new);
        // A single active ReplicaSet (or none: then the newest) simply gets every replica.
        let mut by_newest = old.clone();
        by_newest.sort_by(|&a, &b| util::by_creation(&self.rss[b], &self.rss[a]));
        let active: Vec<usize> = new
            .into_iter()
            .chain(by_newest.iter().copied())
            .filter(|&i| spec_replicas(&self.rss[i]) > 0)
            .collect();
        let target = match active.as_slice() {
            [] => new.or_else(|| by_newest.first().copied()),
            [only] => Some(*only),
            _ => None,
        };
        if let Some(i) = target {
            if spec_replicas(&self.rss[i]) != self.replicas {
                self.scale_rs(i, self.replicas);
            }
            return;
        }

        // A saturated new ReplicaSet: the old ones go away entirely.
        if let Some(n) = new
            && self.is_saturated(n)
        {
            for &i in &old {
                if spec_replicas(&self.rss[i]) > 0 {
                    self.scale_rs(i, 0);
                }
            }
            return;
        }

        if !self.is_rolling() {
            return;
        }
        let mut all: Vec<usize> = old
            .into_iter()
            .chain(new)
            .filter(|&i| spec_replicas(&self.rss[i]) > 0)
            .collect();
        let current: i32 = all.iter().map(|&i| spec_replicas(&self.rss[i])).sum();
        let allowed = if self.replicas > 0 {
            self.replicas + self.max_surge()
        } else {
            0
        };
        let to_add = allowed - current;
        // Largest first; among equals, newest first when growing and oldest first when
        // shrinking.
        all.sort_by(|&a, &b| {
            let (ra, rb) = (&self.rss[a], &self.rss[b]);
            spec_replicas(rb).cmp(&spec_replicas(ra)).then_with(|| {
                if to_add > 0 {
                    util::by_creation(rb, ra)
                } else {
                    util::by_creation(ra, rb)
                }
            })
        });
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for &i in &all {
            let size = spec_replicas(&self.rss[i]);
            if to_add == 0 {
                sizes.push(size);
                continue;
            }
            let proportion = self.proportion(i, to_add, added);
            sizes.push(size + proportion);
            added += proportion;
        }
        if let Some(first) = sizes.first_mut()
            && to_add != 0
        {
            *first = (*first + to_add - added).max(0);
        }
        for (&i, size) in all.iter().zip(sizes) {
            self.scale_rs(i, size);
        }
    }

    /// The new ReplicaSet holds every replica, as last sized for the current `replicas`, and
    /// all of them are available.
    fn is_saturated(&self, i: usize) -> bool {
        let rs = &self.rss[i];
        spec_replicas(rs) == self.replicas
            && util::desired_replicas_annotation(rs) == Some(self.replicas)
            && status_available(rs) == self.replicas
    }

    /// The share of `to_add` (positive or negative) ReplicaSet `i` gets, given `added` so far.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.rss[i];
        let size = spec_replicas(rs);
        if size == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = if self.replicas == 0 {
            -size
        } else {
            let max_now = self.replicas + self.max_surge();
            let max_before = match util::max_replicas_annotation(rs) {
                Some(m) if m != 0 => m,
                _ => self.status.replicas.unwrap_or(0),
            };
            if max_before == 0 {
                0
            } else {
                let scaled = f64::from(size) * f64::from(max_now) / f64::from(max_before);
                round_to_i32(scaled) - size
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    // -------------------------------------------------------------- rolling update

    /// One step of a rolling update: scale the new ReplicaSet up if allowed, else old ones
    /// down if allowed, else (rollout complete) clean up history.
    pub(super) fn rollout_rolling(&mut self) {
        let new = self.sync_revision(true);
        let Some(n) = new else {
            self.sync_rollout_status(None);
            return;
        };
        if self.reconcile_new(n) || self.reconcile_old(n) {
            self.sync_rollout_status(new);
            return;
        }
        if self.is_complete(&self.status) {
            self.cleanup(new);
        }
        self.sync_rollout_status(new);
    }

    fn reconcile_new(&mut self, new: usize) -> bool {
        let current = spec_replicas(&self.rss[new]);
        if current == self.replicas {
            return false;
        }
        if current > self.replicas {
            return self.scale_rs(new, self.replicas);
        }
        let target = self.new_rs_new_replicas(new);
        self.scale_rs(new, target)
    }

    fn reconcile_old(&mut self, new: usize) -> bool {
        let old: Vec<usize> = self
            .old(Some(new))
            .into_iter()
            .filter(|&i| spec_replicas(&self.rss[i]) > 0)
            .collect();
        let old_count: i32 = old.iter().map(|&i| spec_replicas(&self.rss[i])).sum();
        if old_count == 0 {
            return false;
        }
        let all_count: i32 = self.live().map(|i| spec_replicas(&self.rss[i])).sum();
        let min_available = self.replicas - self.max_unavailable();
        let new_unavailable = spec_replicas(&self.rss[new]) - status_available(&self.rss[new]);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down);
        let scaled = self.scale_down_old(&old, new);
        cleaned + scaled > 0
    }

    /// Scales old ReplicaSets down by their unavailable pods (oldest first, at most `limit`
    /// in all): removing them costs no availability.
    fn cleanup_unhealthy(&mut self, old: &[usize], limit: i32) -> i32 {
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| util::by_creation(&self.rss[a], &self.rss[b]));
        let mut total = 0;
        for i in old {
            if total >= limit {
                break;
            }
            let size = spec_replicas(&self.rss[i]);
            let available = status_available(&self.rss[i]);
            if size == 0 || size <= available {
                continue;
            }
            let down = (limit - total).min(size - available);
            self.scale_rs(i, size - down);
            total += down;
        }
        total
    }

    /// Scales old ReplicaSets down (oldest first) as far as `replicas - maxUnavailable`
    /// available pods allow.
    fn scale_down_old(&mut self, old: &[usize], new: usize) -> i32 {
        let min_available = self.replicas - self.max_unavailable();
        let available: i32 = old
            .iter()
            .chain(std::iter::once(&new))
            .map(|&i| status_available(&self.rss[i]))
            .sum();
        if available <= min_available {
            return 0;
        }
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| util::by_creation(&self.rss[a], &self.rss[b]));
        let budget = available - min_available;
        let mut total = 0;
        for i in old {
            if total >= budget {
                break;
            }
            let size = spec_replicas(&self.rss[i]);
            if size == 0 {
                continue;
            }
            let down = size.min(budget - total);
            self.scale_rs(i, size - down);
            total += down;
        }
        total
    }

    // -------------------------------------------------------------- recreate

    /// One step of a recreate rollout: old ReplicaSets to zero; once no old pod is left,
    /// the new ReplicaSet (created now if need be) to full size.
    pub(super) fn rollout_recreate(&mut self, pods: &[Pod], selector: &LabelSelector) {
        let new = self.sync_revision(false);
        let mut scaled_down = false;
        for i in self.old(new) {
            if spec_replicas(&self.rss[i]) > 0 {
                scaled_down |= self.scale_rs(i, 0);
            }
        }
        if scaled_down || self.old_pods_running(new, pods, selector) {
            self.sync_rollout_status(new);
            return;
        }
        let new = match new {
            Some(n) => Some(n),
            None => self.sync_revision(true),
        };
        if let Some(n) = new {
            self.scale_rs(n, self.replicas);
        }
        if self.is_complete(&self.status) {
            self.cleanup(new);
        }
        self.sync_rollout_status(new);
    }

    /// Whether any pod of an old ReplicaSet still runs (or may: every pod not yet finished
    /// counts, terminating ones included).
    fn old_pods_running(&self, new: Option<usize>, pods: &[Pod], selector: &LabelSelector) -> bool {
        let old = self.old(new);
        if old
            .iter()
            .map(|&i| util::status_replicas(&self.rss[i]))
            .sum::<i32>()
            > 0
        {
            return true;
        }
        pods.iter().any(|pod| {
            podutil::same_namespace(&self.d.metadata, &pod.metadata)
                && podutil::selector_matches(selector, &pod.metadata)
                && !podutil::is_pod_terminal(pod)
                && old.iter().any(|&i| {
                    podutil::is_controlled_by(
                        &pod.metadata,
                        crate::replicaset::KIND,
                        &self.rss[i].metadata,
                    )
                })
        })
    }

    // -------------------------------------------------------------- history

    /// Deletes old ReplicaSets beyond `revisionHistoryLimit`, lowest revision first, skipping
    /// any that still has (or may have) pods.
    fn cleanup(&mut self, new: Option<usize>) {
        let limit = self
            .spec
            .revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
        if limit == i32::MAX {
            return;
        }
        let mut cleanable: Vec<usize> = self
            .old(new)
            .into_iter()
            .filter(|&i| self.rss[i].metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| util::by_revision(&self.rss[a], &self.rss[b]));
        for &i in &cleanable[..excess] {
            let rs = &self.rss[i];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if util::status_replicas(rs) != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            if i < self.original.len() {
                self.deleted.push(i);
            }
        }
    }
}

/// Rounds half away from zero, saturating.
fn round_to_i32(x: f64) -> i32 {
    let r = x.round();
    if r >= f64::from(i32::MAX) {
        i32::MAX
    } else if r <= f64::from(i32::MIN) {
        i32::MIN
    } else {
        // In range and integral: exact.
        #[allow(clippy::cast_possible_truncation)]
        let v = r as i32;
        v
    }
}
