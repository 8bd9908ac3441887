//! An event recorder (core/v1 Events, what `kubectl describe` shows): repeated events about
//! the same object with the same type, reason and message are one Event whose `count` and
//! `lastTimestamp` grow, as client-go's correlator does.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Event type `Normal`.
pub const NORMAL: &str = "Normal";
/// Event type `Warning`.
pub const WARNING: &str = "Warning";

/// Records events for one component (`default-scheduler`, `kubelet`, ...).
pub struct Recorder {
    client: kube::Client,
    component: String,
    host: Option<String>,
    /// Event name -> count already written.
    seen: Mutex<HashMap<String, i32>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish()
    }
}

impl Recorder {
    /// A recorder reporting as `component` (on `host`, for node components).
    pub fn new(client: kube::Client, component: &str, host: Option<&str>) -> Self {
        Recorder {
            client,
            component: component.into(),
            host: host.map(String::from),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event; failures are logged, never returned (events are best effort).
    pub async fn record(&self, object: &ObjectReference, kind: &str, reason: &str, message: &str) {
        if let Err(e) = self.try_record(object, kind, reason, message).await {
            tracing::debug!(reason, error = %e, "recording an event failed");
        }
    }

    async fn try_record(
        &self,
        object: &ObjectReference,
        kind: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let ns = object.namespace.clone().unwrap_or_else(|| "default".into());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &object.uid,
            &object.name,
            kind,
            reason,
            message,
            &self.component,
        )
            .hash(&mut h);
        let name = format!(
            "{}.{:016x}",
            object.name.as_deref().unwrap_or("object"),
            h.finish()
        );
        let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Timestamp::now();
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .copied();
        let count = match previous {
            Some(c) => {
                let patch = serde_json::json!({ "count": c + 1, "lastTimestamp": Time(now) });
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => c + 1,
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.create(&events, &name, object, kind, reason, message, now)
                            .await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => match self
                .create(&events, &name, object, kind, reason, message, now)
                .await
            {
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let current = events.get(&name).await?.count.unwrap_or(1);
                    let patch =
                        serde_json::json!({ "count": current + 1, "lastTimestamp": Time(now) });
                    events
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    current + 1
                }
                other => other?,
            },
        };
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, count);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        events: &Api<Event>,
        name: &str,
        object: &ObjectReference,
        kind: &str,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<i32, kube::Error> {
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: object.namespace.clone(),
                ..Default::default()
            },
            involved_object: object.clone(),
            type_: Some(kind.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            action: Some(reason.into()),
            ..Default::default()
        };
        events.create(&PostParams::default(), &ev).await?;
        Ok(1)
    }
}

/// The ObjectReference of an object with metadata.
pub fn reference<K: kube::Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}
