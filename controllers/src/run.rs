//! The controller-manager: shared informers (one watch per resource type, each feeding a
//! reflector store), a work queue per controller, and a worker per controller that reads
//! the stores, calls the controller's pure reconcile function and carries out its plan
//! through the API. Informers map every change to the keys of the controllers that care.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, Preconditions,
};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use crate::queue::WorkQueue;
use crate::{
    daemonset, deployment, endpointslice, gc, namespace, nodeipam, nodelifecycle, podutil,
    replicaset,
};

/// Controller-manager settings (upstream flag names in the CLI).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--cluster-cidr` for node IPAM (None: no podCIDRs are assigned).
    pub cluster_cidr: Option<String>,
    /// `--node-cidr-mask-size`.
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-grace-period`.
    pub node_monitor_grace_period: Duration,
    /// `--node-monitor-period`.
    pub node_monitor_period: Duration,
    /// Toleration time for pods without a not-ready/unreachable toleration
    /// (`--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`).
    pub default_toleration: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_cidr: None,
            node_cidr_mask_size: nodeipam::DEFAULT_NODE_MASK,
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            default_toleration: Duration::from_secs(300),
        }
    }
}

fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    match &m.namespace {
        Some(ns) => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
        None => m.name.clone().unwrap_or_default(),
    }
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The stores every controller reads.
#[derive(Clone)]
struct Stores {
    pods: Store<Pod>,
    rs: Store<ReplicaSet>,
    deploys: Store<Deployment>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    endpoints: Store<Endpoints>,
    nodes: Store<Node>,
    leases: Store<Lease>,
    namespaces: Store<Namespace>,
    daemonsets: Store<DaemonSet>,
}

#[derive(Clone, Default)]
struct Queues {
    rs: WorkQueue,
    ds: WorkQueue,
    deploys: WorkQueue,
    services: WorkQueue,
    nodes: WorkQueue,
    namespaces: WorkQueue,
}

struct Ctx {
    client: kube::Client,
    opts: Options,
    stores: Stores,
    /// ReplicaSet expectations, shared with the pod informer that observes them.
    exp: Arc<Mutex<HashMap<String, replicaset::Expectations>>>,
    ipam: Mutex<Option<nodeipam::CidrAllocator>>,
}

impl Ctx {
    fn pods_in(&self, ns: &str) -> Vec<Pod> {
        self.stores
            .pods
            .state()
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(ns))
            .map(|p| (**p).clone())
            .collect()
    }
}

/// Spawns a watch of `api` feeding a store; `on_change` runs for every applied or deleted
/// object (with `true` for deletions). Returns the store once the first list is in.
async fn informer<K, F>(api: Api<K>, on_change: F) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    F: Fn(&K, bool) + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => {
                    on_change(&o, false)
                }
                Ok(watcher::Event::Delete(o)) => on_change(&o, true),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watch"),
            }
        }
    });
    let _ = reader.wait_until_ready().await;
    reader
}

/// Runs every controller until the future is dropped.
pub async fn run(client: kube::Client, opts: Options) {
    let queues = Queues::default();
    let q = queues.clone();
    let rs_store_for_pods: Arc<Mutex<Option<Store<ReplicaSet>>>> = Arc::default();
    let rs_ref = Arc::clone(&rs_store_for_pods);
    let exp: Arc<Mutex<HashMap<String, replicaset::Expectations>>> = Arc::default();
    let exp_pods = Arc::clone(&exp);
    let services_for_pods: Arc<Mutex<Option<Store<Service>>>> = Arc::default();
    let svc_ref = Arc::clone(&services_for_pods);
    let pods = informer(
        Api::<Pod>::all(client.clone()),
        move |pod: &Pod, deleted| {
            // The pod's ReplicaSet (and its expectations), and every Service of its namespace.
            if let Some(owner) =
                podutil::controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet")
            {
                let key = format!("{}/{}", pod.namespace().unwrap_or_default(), owner.name);
                let mut e = exp_pods.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(x) = e.get_mut(&key) {
                    if deleted || pod.metadata.deletion_timestamp.is_some() {
                        x.deletion_observed(&pod.name_any());
                    } else {
                        x.creation_observed();
                    }
                }
                q.rs.add(key);
            } else if let Some(ns) = pod.namespace() {
                // An orphan may be adopted by any ReplicaSet of its namespace.
                if let Some(rs) = rs_ref.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    for r in rs
                        .state()
                        .iter()
                        .filter(|r| r.namespace().as_deref() == Some(&ns))
                    {
                        q.rs.add(key_of(&**r));
                    }
                }
            }
            if let (Some(ns), Some(svcs)) = (
                pod.namespace(),
                svc_ref.lock().unwrap_or_else(|p| p.into_inner()).as_ref(),
            ) {
                for s in svcs
                    .state()
                    .iter()
                    .filter(|s| s.namespace().as_deref() == Some(&ns))
                {
                    q.services.add(key_of(&**s));
                }
            }
            let _ = deleted;
        },
    )
    .await;
    let q = queues.clone();
    let rs = informer(
        Api::<ReplicaSet>::all(client.clone()),
        move |rs: &ReplicaSet, _| {
            q.rs.add(key_of(rs));
            if let Some(owner) =
                podutil::controller_of(&rs.metadata).filter(|o| o.kind == "Deployment")
            {
                q.deploys.add(format!(
                    "{}/{}",
                    rs.namespace().unwrap_or_default(),
                    owner.name
                ));
            }
        },
    )
    .await;
    *rs_store_for_pods.lock().unwrap_or_else(|p| p.into_inner()) = Some(rs.clone());
    let q = queues.clone();
    let deploys = informer(
        Api::<Deployment>::all(client.clone()),
        move |d: &Deployment, _| q.deploys.add(key_of(d)),
    )
    .await;
    let q = queues.clone();
    let services = informer(
        Api::<Service>::all(client.clone()),
        move |s: &Service, _| q.services.add(key_of(s)),
    )
    .await;
    *services_for_pods.lock().unwrap_or_else(|p| p.into_inner()) = Some(services.clone());
    let q = queues.clone();
    let slices = informer(
        Api::<EndpointSlice>::all(client.clone()),
        move |s: &EndpointSlice, _| {
            if let (Some(ns), Some(svc)) = (
                s.namespace(),
                s.labels().get(endpointslice::LABEL_SERVICE_NAME),
            ) {
                q.services.add(format!("{ns}/{svc}"));
            }
        },
    )
    .await;
    let endpoints = informer(Api::<Endpoints>::all(client.clone()), |_: &Endpoints, _| {}).await;
    let q = queues.clone();
    let q2 = queues.clone();
    let ds_for_nodes: Arc<Mutex<Option<Store<DaemonSet>>>> = Arc::default();
    let ds_ref = Arc::clone(&ds_for_nodes);
    let nodes = informer(Api::<Node>::all(client.clone()), move |n: &Node, _| {
        q.nodes.add(key_of(n));
        // Every DaemonSet may want a pod on a new or changed node.
        if let Some(ds) = ds_ref.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            for d in ds.state() {
                q2.ds.add(key_of(&*d));
            }
        }
    })
    .await;
    let q = queues.clone();
    let daemonsets = informer(
        Api::<DaemonSet>::all(client.clone()),
        move |d: &DaemonSet, _| q.ds.add(key_of(d)),
    )
    .await;
    *ds_for_nodes.lock().unwrap_or_else(|p| p.into_inner()) = Some(daemonsets.clone());
    let leases = informer(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        |_: &Lease, _| {},
    )
    .await;
    let q = queues.clone();
    let namespaces = informer(
        Api::<Namespace>::all(client.clone()),
        move |n: &Namespace, _| q.namespaces.add(key_of(n)),
    )
    .await;

    let stores = Stores {
        pods,
        rs,
        deploys,
        services,
        slices,
        endpoints,
        nodes,
        leases,
        namespaces,
        daemonsets,
    };
    let ipam = opts.cluster_cidr.as_deref().and_then(|cidr| {
        let nodes: Vec<Node> = stores.nodes.state().iter().map(|n| (**n).clone()).collect();
        match nodeipam::CidrAllocator::from_nodes(cidr, opts.node_cidr_mask_size, &nodes) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(error = %e, "node IPAM disabled");
                None
            }
        }
    });
    let ctx = Arc::new(Ctx {
        client,
        opts,
        stores,
        exp,
        ipam: Mutex::new(ipam),
    });

    tokio::join!(
        worker(queues.rs.clone(), Arc::clone(&ctx), |c, k| Box::pin(
            sync_replicaset(c, k)
        )),
        worker(queues.deploys.clone(), Arc::clone(&ctx), |c, k| Box::pin(
            sync_deployment(c, k)
        )),
        worker(queues.services.clone(), Arc::clone(&ctx), |c, k| Box::pin(
            sync_service(c, k)
        )),
        worker(queues.nodes.clone(), Arc::clone(&ctx), |c, k| Box::pin(
            sync_node_ipam(c, k)
        )),
        worker(
            queues.namespaces.clone(),
            Arc::clone(&ctx),
            |c, k| Box::pin(sync_namespace(c, k))
        ),
        worker(queues.ds.clone(), Arc::clone(&ctx), |c, k| Box::pin(
            sync_daemonset(c, k)
        )),
        monitor_nodes(Arc::clone(&ctx)),
        collect_garbage(Arc::clone(&ctx)),
    );
}

type SyncFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Duration>, kube::Error>> + Send + 'a>,
>;

/// Runs `sync` for each key; failures are retried with back-off, requests to requeue honoured.
async fn worker<F>(queue: WorkQueue, ctx: Arc<Ctx>, sync: F)
where
    F: for<'a> Fn(&'a Ctx, &'a str) -> SyncFuture<'a>,
{
    let mut failures: HashMap<String, u32> = HashMap::new();
    loop {
        let key = queue.next().await;
        match sync(&ctx, &key).await {
            Ok(requeue) => {
                failures.remove(&key);
                if let Some(after) = requeue {
                    queue.add_after(key.clone(), after);
                }
            }
            Err(e) => {
                let n = failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let delay = Duration::from_millis(5 * 2u64.pow((*n).min(12)));
                tracing::debug!(%key, error = %e, ?delay, "sync failed; retrying");
                queue.add_after(key.clone(), delay.min(Duration::from_secs(60)));
            }
        }
        queue.done(&key);
    }
}

/// Carries out adoption and release: `adopt` gets `owner` as its controller reference;
/// `release` loses every reference to the owner's uid (with the read resourceVersion as a
/// precondition, so a concurrent change is retried rather than overwritten).
async fn claim<K>(
    api: &Api<K>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    objects: &[K],
    adopt: &[String],
    release: &[String],
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for name in adopt {
        let patch = serde_json::json!({ "metadata": { "ownerReferences": [owner] } });
        ignore_gone(
            api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map(drop),
        )?;
    }
    for name in release {
        if let Some(obj) = objects
            .iter()
            .find(|o| o.meta().name.as_deref() == Some(name))
        {
            let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
            refs.retain(|r| r.uid != owner.uid);
            let patch = serde_json::json!({ "metadata": { "ownerReferences": refs, "resourceVersion": obj.meta().resource_version } });
            ignore_gone(
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop),
            )?;
        }
    }
    Ok(())
}

/// Writes `new` as the status of `name` when it differs from `old` (a gone object is not
/// an error: its informer event will end the sync).
async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(());
    }
    let patch = status_patch(old, new);
    ignore_gone(
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop),
    )
}

/// A merge patch turning status `old` into `new`: fields `new` drops are sent as null, so a
/// count that went to zero (omitted when serialized) does not linger.
fn status_patch<T: serde::Serialize>(old: Option<&T>, new: &T) -> serde_json::Value {
    let mut new = serde_json::to_value(new).unwrap_or_default();
    if let (Some(old), Some(map)) = (
        old.and_then(|o| serde_json::to_value(o).ok()),
        new.as_object_mut(),
    ) && let Some(old) = old.as_object()
    {
        for k in old.keys() {
            map.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": new })
}

fn ignore_gone(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        other => other,
    }
}

async fn sync_replicaset(ctx: &Ctx, key: &str) -> Result<Option<Duration>, kube::Error> {
    let (ns, name) = split(key);
    let Some(rs) = ctx
        .stores
        .rs
        .state()
        .into_iter()
        .find(|r| key_of(&**r) == key)
    else {
        ctx.exp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        return Ok(None);
    };
    let now = Timestamp::now();
    let pods = ctx.pods_in(ns);
    let plan = {
        let e = ctx.exp.lock().unwrap_or_else(|p| p.into_inner());
        let exp = e.get(key).cloned().unwrap_or_default();
        replicaset::reconcile_with_expectations(&rs, &pods, &exp, now)
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let owner = replicaset::controller_ref(&rs);
    claim(&pods_api, &owner, &pods, &plan.adopt, &plan.release).await?;
    if !plan.create.is_empty() || !plan.delete.is_empty() {
        let mut e = ctx.exp.lock().unwrap_or_else(|p| p.into_inner());
        let x = e.entry(key.to_string()).or_default();
        x.expect_creations(plan.create.len(), now);
        x.expect_deletions(plan.delete.iter().cloned(), now);
    }
    for pod in &plan.create {
        if let Err(e) = pods_api.create(&PostParams::default(), pod).await {
            // The creation will never be observed: lower the expectation.
            if let Some(x) = ctx
                .exp
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(key)
            {
                x.creation_observed();
            }
            return Err(e);
        }
    }
    for p in &plan.delete {
        // A delete that did not happen (the pod is gone already, or the write lost a race)
        // will never be observed by the informer: lower the expectation now, or the
        // ReplicaSet would wait for it until the expectations time out.
        let outcome = pods_api.delete(p, &DeleteParams::default()).await;
        let mut exp = ctx.exp.lock().unwrap_or_else(|p| p.into_inner());
        if let (true, Some(x)) = (outcome.is_err(), exp.get_mut(key)) {
            x.deletion_observed(p);
        }
        drop(exp);
        match outcome {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    write_status(&rs_api, name, rs.status.as_ref(), &plan.status).await?;
    Ok(plan.requeue_after)
}

async fn sync_deployment(ctx: &Ctx, key: &str) -> Result<Option<Duration>, kube::Error> {
    let (ns, name) = split(key);
    let Some(d) = ctx
        .stores
        .deploys
        .state()
        .into_iter()
        .find(|x| key_of(&**x) == key)
    else {
        return Ok(None);
    };
    let rss: Vec<ReplicaSet> = ctx
        .stores
        .rs
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(ns))
        .map(|r| (**r).clone())
        .collect();
    let pods = ctx.pods_in(ns);
    let plan = deployment::reconcile(&d, &rss, &pods, Timestamp::now());
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let owner = deployment::controller_ref(&d);
    claim(&rs_api, &owner, &rss, &plan.adopt, &plan.release).await?;
    if let Some(new_rs) = &plan.create_rs {
        match rs_api.create(&PostParams::default(), new_rs).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    for (r, annotations) in &plan.update_rs_annotations {
        let patch = serde_json::json!({ "metadata": { "annotations": annotations } });
        ignore_gone(
            rs_api
                .patch(r, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop),
        )?;
    }
    for (r, secs) in &plan.set_min_ready_seconds {
        let patch = serde_json::json!({ "spec": { "minReadySeconds": secs } });
        ignore_gone(
            rs_api
                .patch(r, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop),
        )?;
    }
    for (r, replicas) in &plan.scale {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        ignore_gone(
            rs_api
                .patch(r, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop),
        )?;
    }
    for r in &plan.delete_rs {
        ignore_gone(
            rs_api
                .delete(r, &DeleteParams::background())
                .await
                .map(drop),
        )?;
    }
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(rev) = &plan.deployment_revision
        && d.annotations().get("deployment.kubernetes.io/revision") != Some(rev)
    {
        let patch = serde_json::json!({ "metadata": { "annotations": { "deployment.kubernetes.io/revision": rev } } });
        ignore_gone(
            d_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop),
        )?;
    }
    write_status(&d_api, name, d.status.as_ref(), &plan.status).await?;
    Ok(plan.requeue_after)
}

async fn sync_service(ctx: &Ctx, key: &str) -> Result<Option<Duration>, kube::Error> {
    let (ns, name) = split(key);
    let Some(svc) = ctx
        .stores
        .services
        .state()
        .into_iter()
        .find(|x| key_of(&**x) == key)
    else {
        return Ok(None);
    };
    if !endpointslice::manages(&svc) {
        return Ok(None);
    }
    let pods = ctx.pods_in(ns);
    let desired = endpointslice::desired(&svc, &pods);
    let existing: Vec<EndpointSlice> = ctx
        .stores
        .slices
        .state()
        .iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns)
                && s.labels()
                    .get(endpointslice::LABEL_SERVICE_NAME)
                    .map(String::as_str)
                    == Some(name)
        })
        .map(|s| (**s).clone())
        .collect();
    let plan = endpointslice::plan(&svc, &desired, &existing);
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    for s in &plan.create {
        slices.create(&PostParams::default(), s).await?;
    }
    for s in &plan.update {
        ignore_gone(
            slices
                .replace(&s.name_any(), &PostParams::default(), s)
                .await
                .map(drop),
        )?;
    }
    for s in &plan.delete {
        ignore_gone(slices.delete(s, &DeleteParams::default()).await.map(drop))?;
    }
    if let Some(desired) = endpointslice::endpoints(&svc, &pods) {
        let existing = ctx
            .stores
            .endpoints
            .state()
            .into_iter()
            .find(|e| key_of(&**e) == key);
        let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
        match endpointslice::plan_endpoints(desired, existing.as_deref()) {
            endpointslice::EndpointsAction::None => {}
            endpointslice::EndpointsAction::Create(e) => {
                ignore_gone(api.create(&PostParams::default(), &e).await.map(drop))?;
            }
            endpointslice::EndpointsAction::Update(e) => {
                ignore_gone(
                    api.replace(name, &PostParams::default(), &e)
                        .await
                        .map(drop),
                )?;
            }
        }
    }
    Ok(None)
}

async fn sync_node_ipam(ctx: &Ctx, key: &str) -> Result<Option<Duration>, kube::Error> {
    let Some(node) = ctx
        .stores
        .nodes
        .state()
        .into_iter()
        .find(|n| n.name_any() == key)
    else {
        if let Some(a) = ctx.ipam.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            a.release_node(key);
        }
        return Ok(None);
    };
    if !nodeipam::node_cidrs(&node).is_empty() {
        return Ok(None);
    }
    let cidr = {
        let mut guard = ctx.ipam.lock().unwrap_or_else(|p| p.into_inner());
        let Some(a) = guard.as_mut() else {
            return Ok(None);
        };
        match a.allocate(&node) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(node = key, error = %e, "no podCIDR for node");
                return Ok(Some(Duration::from_secs(30)));
            }
        }
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({ "spec": { "podCIDR": cidr, "podCIDRs": [cidr] } });
    api.patch(key, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(None)
}

/// The default ServiceAccount of every namespace, and the emptying of terminating ones.
async fn sync_namespace(ctx: &Ctx, key: &str) -> Result<Option<Duration>, kube::Error> {
    let Some(ns) = ctx
        .stores
        .namespaces
        .state()
        .into_iter()
        .find(|n| n.name_any() == key)
    else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_some() {
        return terminate_namespace(ctx, &ns).await;
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), key);
    if api.get_opt("default").await?.is_none() {
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": "default" } }))
                .unwrap_or_default();
        ignore_gone(api.create(&PostParams::default(), &sa).await.map(drop))?;
    }
    Ok(None)
}

/// Node lifecycle: every monitor period, mark nodes whose kubelet went silent and evict
/// the pods that do not tolerate it.
async fn monitor_nodes(ctx: Arc<Ctx>) {
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    loop {
        tokio::time::sleep(ctx.opts.node_monitor_period).await;
        let now = Timestamp::now();
        let nodes: Vec<Node> = ctx
            .stores
            .nodes
            .state()
            .iter()
            .map(|n| (**n).clone())
            .collect();
        let leases: Vec<Lease> = ctx
            .stores
            .leases
            .state()
            .iter()
            .map(|l| (**l).clone())
            .collect();
        for update in nodelifecycle::plan(&nodes, &leases, now, ctx.opts.node_monitor_grace_period)
        {
            if let Some(conditions) = &update.conditions {
                let patch = serde_json::json!({ "status": { "conditions": conditions } });
                if let Err(e) = nodes_api
                    .patch_status(
                        &update.name,
                        &PatchParams::default(),
                        &Patch::Strategic(&patch),
                    )
                    .await
                {
                    tracing::warn!(node = %update.name, error = %e, "updating node conditions");
                }
            }
            if let Some(taints) = &update.taints {
                let patch = serde_json::json!({ "spec": { "taints": taints } });
                if let Err(e) = nodes_api
                    .patch(&update.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(node = %update.name, error = %e, "updating node taints");
                }
            }
        }
        for node in ctx.stores.nodes.state() {
            let name = node.name_any();
            let on_node: Vec<Pod> = ctx
                .stores
                .pods
                .state()
                .iter()
                .filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                })
                .map(|p| (**p).clone())
                .collect();
            for (pod, when) in
                nodelifecycle::evictions(&node, &on_node, now, ctx.opts.default_toleration)
            {
                if when.is_some() {
                    continue; // checked again next period
                }
                if let Some(p) = on_node.iter().find(|p| p.name_any() == pod) {
                    let api: Api<Pod> =
                        Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
                    tracing::info!(node = %name, %pod, "evicting: node not ready");
                    // The node's kubelet is gone: delete without waiting for it.
                    let _ = api
                        .delete(&pod, &DeleteParams::default().grace_period(0))
                        .await;
                }
            }
        }
    }
}

/// Namespaced resources the namespace controller empties (plural, api group/version, kind).
const NAMESPACED: &[(&str, &str, &str, &str)] = &[
    ("pods", "", "v1", "Pod"),
    ("services", "", "v1", "Service"),
    ("endpoints", "", "v1", "Endpoints"),
    ("configmaps", "", "v1", "ConfigMap"),
    ("secrets", "", "v1", "Secret"),
    ("events", "", "v1", "Event"),
    ("serviceaccounts", "", "v1", "ServiceAccount"),
    ("persistentvolumeclaims", "", "v1", "PersistentVolumeClaim"),
    ("deployments.apps", "apps", "v1", "Deployment"),
    ("replicasets.apps", "apps", "v1", "ReplicaSet"),
    ("daemonsets.apps", "apps", "v1", "DaemonSet"),
    (
        "endpointslices.discovery.k8s.io",
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
    ),
    (
        "leases.coordination.k8s.io",
        "coordination.k8s.io",
        "v1",
        "Lease",
    ),
];

fn dynamic(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = plural.split('.').next().unwrap_or(plural);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn terminate_namespace(ctx: &Ctx, ns: &Namespace) -> Result<Option<Duration>, kube::Error> {
    let name = ns.name_any();
    let mut counts = Vec::new();
    for (plural, group, version, kind) in NAMESPACED {
        let api = dynamic(&ctx.client, group, version, kind, plural, Some(&name));
        let n = api.list_metadata(&ListParams::default()).await?.items.len();
        counts.push((plural.to_string(), n));
    }
    let plan = namespace::plan(
        ns,
        &namespace::Content::from_counts(counts),
        Timestamp::now(),
    );
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    if plan.set_terminating || plan.conditions.is_some() {
        let mut status = serde_json::json!({ "phase": "Terminating" });
        if let Some(c) = &plan.conditions {
            status["conditions"] = serde_json::to_value(c).unwrap_or_default();
        }
        ignore_gone(
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "status": status })),
            )
            .await
            .map(drop),
        )?;
    }
    for plural in &plan.delete {
        if let Some((p, group, version, kind)) = NAMESPACED.iter().find(|r| r.0 == plural) {
            let api = dynamic(&ctx.client, group, version, kind, p, Some(&name));
            match api
                .delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(finalizers) = plan.finalize {
        let mut body = serde_json::to_value(ns).unwrap_or_default();
        body["spec"]["finalizers"] = serde_json::json!(finalizers);
        ignore_gone(
            api.replace_subresource("finalize", &name, &PostParams::default(), &body)
                .await
                .map(drop::<Namespace>),
        )?;
        return Ok(None);
    }
    // Pods may wait for their kubelets: look again soon.
    Ok(Some(Duration::from_secs(1)))
}

async fn sync_daemonset(ctx: &Ctx, key: &str) -> Result<Option<Duration>, kube::Error> {
    let (ns, name) = split(key);
    let Some(ds) = ctx
        .stores
        .daemonsets
        .state()
        .into_iter()
        .find(|d| key_of(&**d) == key)
    else {
        return Ok(None);
    };
    let nodes: Vec<Node> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .map(|n| (**n).clone())
        .collect();
    let pods = ctx.pods_in(ns);
    let plan = daemonset::reconcile(&ds, &nodes, &pods, Timestamp::now());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let owner = daemonset::controller_ref(&ds);
    claim(&api, &owner, &pods, &plan.adopt, &plan.release).await?;
    for (_, pod) in &plan.create {
        api.create(&PostParams::default(), pod).await?;
    }
    for p in &plan.delete {
        ignore_gone(api.delete(p, &DeleteParams::default()).await.map(drop))?;
    }
    if let Some(status) = &plan.status {
        let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), ns);
        write_status(&ds_api, name, ds.status.as_ref(), status).await?;
    }
    Ok(None)
}

/// Owner-reference garbage collection over the kinds the informers hold, every second.
async fn collect_garbage(ctx: Arc<Ctx>) {
    let kinds = vec![
        gc::KindInfo::namespaced("v1", "Pod"),
        gc::KindInfo::namespaced("apps/v1", "ReplicaSet"),
        gc::KindInfo::namespaced("apps/v1", "Deployment"),
        gc::KindInfo::namespaced("apps/v1", "DaemonSet"),
        gc::KindInfo::namespaced("v1", "Service"),
        gc::KindInfo::namespaced("discovery.k8s.io/v1", "EndpointSlice"),
    ];
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut objects = Vec::new();
        let s = &ctx.stores;
        objects.extend(
            s.pods
                .state()
                .iter()
                .map(|o| gc::ObjectRef::from_meta("v1", "Pod", &o.metadata)),
        );
        objects.extend(
            s.rs.state()
                .iter()
                .map(|o| gc::ObjectRef::from_meta("apps/v1", "ReplicaSet", &o.metadata)),
        );
        objects.extend(
            s.deploys
                .state()
                .iter()
                .map(|o| gc::ObjectRef::from_meta("apps/v1", "Deployment", &o.metadata)),
        );
        objects.extend(
            s.daemonsets
                .state()
                .iter()
                .map(|o| gc::ObjectRef::from_meta("apps/v1", "DaemonSet", &o.metadata)),
        );
        objects.extend(
            s.services
                .state()
                .iter()
                .map(|o| gc::ObjectRef::from_meta("v1", "Service", &o.metadata)),
        );
        objects.extend(s.slices.state().iter().map(|o| {
            gc::ObjectRef::from_meta("discovery.k8s.io/v1", "EndpointSlice", &o.metadata)
        }));
        for action in gc::plan(&objects, &kinds) {
            if let Err(e) = apply_gc(&ctx.client, &action).await {
                tracing::debug!(?action, error = %e, "garbage collection step failed; retrying");
            }
        }
    }
}

fn api_for(client: &kube::Client, key: &gc::ObjectKey) -> Api<DynamicObject> {
    let (group, version) = key
        .api_version
        .split_once('/')
        .unwrap_or(("", key.api_version.as_str()));
    let plural = NAMESPACED
        .iter()
        .find(|r| r.3 == key.kind)
        .map(|r| r.0)
        .unwrap_or("pods");
    dynamic(
        client,
        group,
        version,
        &key.kind,
        plural,
        key.namespace.as_deref(),
    )
}

async fn apply_gc(client: &kube::Client, action: &gc::GcAction) -> Result<(), kube::Error> {
    match action {
        gc::GcAction::Delete {
            object,
            propagation,
        } => {
            let api = api_for(client, object);
            let dp = DeleteParams {
                propagation_policy: Some(match propagation {
                    gc::Propagation::Background => kube::api::PropagationPolicy::Background,
                    gc::Propagation::Foreground => kube::api::PropagationPolicy::Foreground,
                    gc::Propagation::Orphan => kube::api::PropagationPolicy::Orphan,
                }),
                preconditions: Some(Preconditions {
                    uid: Some(object.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            ignore_gone(api.delete(&object.name, &dp).await.map(drop))
        }
        gc::GcAction::RemoveOwnerRefs { object, owner_uids } => {
            let api = api_for(client, object);
            let Some(current) = api.get_opt(&object.name).await? else {
                return Ok(());
            };
            let mut refs = current
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            refs.retain(|r| !owner_uids.contains(&r.uid));
            let patch = serde_json::json!({ "metadata": { "ownerReferences": refs, "resourceVersion": current.metadata.resource_version } });
            ignore_gone(
                api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop),
            )
        }
        gc::GcAction::UnblockOwnerRefs { object } => {
            let api = api_for(client, object);
            let Some(current) = api.get_opt(&object.name).await? else {
                return Ok(());
            };
            let mut refs = current
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            for r in &mut refs {
                r.block_owner_deletion = Some(false);
            }
            let patch = serde_json::json!({ "metadata": { "ownerReferences": refs, "resourceVersion": current.metadata.resource_version } });
            ignore_gone(
                api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop),
            )
        }
        gc::GcAction::RemoveFinalizer { object, finalizer } => {
            let api = api_for(client, object);
            let Some(current) = api.get_opt(&object.name).await? else {
                return Ok(());
            };
            let mut fins = current.metadata.finalizers.clone().unwrap_or_default();
            fins.retain(|f| f != finalizer);
            let patch = serde_json::json!({ "metadata": { "finalizers": fins, "resourceVersion": current.metadata.resource_version } });
            ignore_gone(
                api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop),
            )
        }
    }
}
