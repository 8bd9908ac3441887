//! The resource handlers: get, list, watch, create, update, patch, delete and
//! deletecollection, generic over every kind in the registry, plus the subresources
//! (status, scale, binding, finalize). Each verb follows upstream's generic registry:
//! decode, check the request against the URL, fill system fields, default, validate, and
//! write with an optimistic-concurrency precondition.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::admission;
use crate::alloc::Allocator;
use crate::codec;
use crate::object::{self, meta, meta_mut};
use crate::registry::{self, Resource};
use crate::request::{Query, Target};
use crate::selector;
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{Kv, Revision, Store, StoreError};

/// Response body: a buffered object or a watch stream.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
/// An HTTP response.
pub type Response = http::Response<Body>;

/// Largest accepted request body (upstream's limit for most requests is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A response with a JSON body.
pub fn json_response(code: StatusCode, body: Bytes) -> Response {
    let body = http_body_util::Full::new(body)
        .map_err(|never| match never {})
        .boxed();
    let mut r = http::Response::new(body);
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A response carrying `value`.
pub fn value_response(code: StatusCode, value: &Value) -> Response {
    json_response(
        code,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// The `Status` response of an error.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    value_response(code, &e.to_status())
}

/// Shared state of the handlers.
#[derive(Debug)]
pub struct Api {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// Service ClusterIP and NodePort allocation.
    pub alloc: Allocator,
    /// Watch bookmark interval.
    pub bookmark_interval: std::time::Duration,
    /// Fan-out of store watches to client watches.
    pub cache: crate::watchcache::WatchCache,
    /// TLS client for `pods/log` (None: logs are unavailable).
    pub kubelet: Option<crate::proxy::KubeletClient>,
}

/// Where a client watch's events come from.
enum Source {
    Cache(crate::watchcache::Subscription),
    Store(crate::store::EventStream),
}

impl Source {
    async fn next(&mut self) -> Option<Result<Arc<crate::store::Event>, StoreError>> {
        match self {
            Source::Cache(sub) => sub.next().await,
            Source::Store(s) => futures_util::StreamExt::next(s)
                .await
                .map(|r| r.map(Arc::new)),
        }
    }
}

/// Output format asked for by the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects and lists.
    Json,
    /// meta.k8s.io Table (kubectl get).
    Table,
}

/// The format the client asked for.
pub fn format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept
        .split(',')
        .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
    {
        Format::Table
    } else {
        Format::Json
    }
}

/// Everything a handler needs to know about one request.
#[derive(Debug)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// What the path addresses.
    pub target: Target,
    /// Query parameters.
    pub query: &'a Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: Bytes,
}

fn not_found(r: &Resource, name: &str) -> ApiError {
    ApiError::not_found(r.group, r.plural, name)
}

impl Api {
    /// Handles one resource request.
    pub async fn handle(self: &Arc<Self>, req: Request<'_>) -> Response {
        match self.dispatch(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    async fn dispatch(self: &Arc<Self>, req: Request<'_>) -> ApiResult<Response> {
        let t = &req.target;
        let r = t.resource;
        let sub = t.subresource.as_deref();
        let name = t.name.clone();
        let watch = req.query.flag("watch") || t.watch_prefix;
        match (req.method.clone(), name, sub) {
            (Method::GET, _, _) if watch => self.watch(&req).await,
            (Method::GET, None, None) => self.list(&req).await,
            (Method::GET, Some(n), None | Some("status")) => self.get(&req, &n).await,
            (Method::GET, Some(n), Some("scale")) => self.get_scale(&req, &n).await,
            (Method::GET, Some(n), Some("log")) => self.logs(&req, &n).await,
            (Method::POST, None, None) => self.create(&req).await,
            (Method::POST, Some(n), Some("binding")) => self.bind(&req, &n).await,
            (Method::PUT, Some(n), None | Some("status") | Some("finalize")) => {
                self.update(&req, &n).await
            }
            (Method::PUT, Some(n), Some("scale")) => self.update_scale(&req, &n).await,
            (Method::PATCH, Some(n), None | Some("status") | Some("scale")) => {
                self.patch(&req, &n).await
            }
            (Method::DELETE, Some(n), None) => self.delete(&req, &n).await,
            (Method::DELETE, None, None) => self.delete_collection(&req).await,
            (m, _, s) => Err(ApiError::method_not_allowed(
                m.as_str(),
                &match s {
                    Some(s) => format!("{}/{s}", r.plural),
                    None => r.plural.to_string(),
                },
            )),
        }
    }

    // ---------------------------------------------------------------- reads

    async fn get(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let key = r.key(req.target.namespace.as_deref(), name);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, r.group, r.plural, name))?;
        let kv = kv.ok_or_else(|| not_found(r, name))?;
        let wire = codec::with_rv(&kv.value, kv.mod_revision);
        if format(req.headers) == Format::Table {
            let obj: Value =
                serde_json::from_slice(&wire).map_err(|e| ApiError::internal(e.to_string()))?;
            let table = crate::table::table(
                r,
                &[obj],
                kv.mod_revision,
                None,
                req.query.get("includeObject"),
            );
            return Ok(value_response(StatusCode::OK, &table));
        }
        Ok(json_response(StatusCode::OK, wire))
    }

    async fn list(&self, req: &Request<'_>) -> ApiResult<Response> {
        let r = req.target.resource;
        let filter = Filter::from_query(r, req.query, None)?;
        let limit: usize = match req.query.get("limit") {
            None | Some("") => 0,
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        };
        let prefix = r.namespace_prefix(req.target.namespace.as_deref());
        let (revision, start_after) = match req.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (rv, key) = decode_continue(token, &prefix)?;
                (Some(rv), Some(key))
            }
            None => (list_revision(req.query)?, None),
        };
        let store_err = |e: StoreError| match e {
            StoreError::Compacted { .. } if start_after.is_some() => ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            e => ApiError::from_store(e, r.group, r.plural, ""),
        };
        // Without a filter the store pages for us; with one, read the rest of the range at one
        // revision and page over the matches.
        let page_limit = if filter.is_empty() { limit } else { 0 };
        let page = self
            .store
            .list(&prefix, start_after.as_deref(), page_limit, revision)
            .await
            .map_err(store_err)?;
        let list_rv = page.revision;
        let (items, more) = if filter.is_empty() {
            (page.items, page.more)
        } else {
            let mut matched = Vec::new();
            let mut more = false;
            for kv in page.items {
                if filter.matches_stored(&kv)? {
                    if limit > 0 && matched.len() == limit {
                        more = true;
                        break;
                    }
                    matched.push(kv);
                }
            }
            (matched, more)
        };
        let continue_token = if more {
            items
                .last()
                .map(|kv| encode_continue(list_rv, &kv.key, &prefix))
                .unwrap_or_default()
        } else {
            String::new()
        };
        if format(req.headers) == Format::Table {
            let objs: Vec<Value> = items
                .iter()
                .filter_map(|kv| codec::decode(&kv.value, kv.mod_revision))
                .collect();
            let table = crate::table::table(
                r,
                &objs,
                list_rv,
                Some(&continue_token),
                req.query.get("includeObject"),
            );
            return Ok(value_response(StatusCode::OK, &table));
        }
        let mut out =
            Vec::with_capacity(64 + items.iter().map(|kv| kv.value.len() + 32).sum::<usize>());
        out.extend_from_slice(
            format!(
                "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{list_rv}\"",
                r.list_kind(),
                r.api_version()
            )
            .as_bytes(),
        );
        if !continue_token.is_empty() {
            out.extend_from_slice(format!(",\"continue\":\"{continue_token}\"").as_bytes());
        }
        out.extend_from_slice(b"},\"items\":[");
        for (i, kv) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&codec::with_rv(&kv.value, kv.mod_revision));
        }
        out.extend_from_slice(b"]}");
        Ok(json_response(StatusCode::OK, Bytes::from(out)))
    }
}

/// The revision a list reads at, from `resourceVersion` and `resourceVersionMatch`.
fn list_revision(q: &Query) -> ApiResult<Option<Revision>> {
    match q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        None => Ok(None),
        Some(v) => {
            let rv: Revision = v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {v:?}")))?;
            // Exact reads at that revision; NotOlderThan (the default) may read newer data.
            Ok(if q.get("resourceVersionMatch") == Some("Exact") {
                Some(rv)
            } else {
                None
            })
        }
    }
}

fn encode_continue(rv: Revision, key: &str, prefix: &str) -> String {
    use base64::Engine;
    let start = key.strip_prefix(prefix).unwrap_or(key);
    let token = json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": start });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(Revision, String)> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|rv| *rv > 0)
        .ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, format!("{prefix}{start}")))
}

/// A request's label and field selectors, and the name a watch may be limited to.
#[derive(Debug)]
pub struct Filter {
    labels: Option<selector::LabelSelector>,
    fields: Option<selector::FieldSelector>,
    name: Option<String>,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`, checking each field is selectable.
    pub fn from_query(r: &Resource, q: &Query, name: Option<String>) -> ApiResult<Self> {
        let labels = match q.get("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(
                selector::parse_label_selector(s)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            ),
            None => None,
        };
        let fields = match q.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f = selector::parse_field_selector(s)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                for field in f.fields() {
                    if !r.selectable(field) {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {field}"
                        )));
                    }
                }
                Some(f)
            }
            None => None,
        };
        Ok(Filter {
            labels,
            fields,
            name,
        })
    }

    /// True when everything matches.
    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none() && self.name.is_none()
    }

    /// Whether an object matches.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(n) = &self.name
            && object::name(obj) != n
        {
            return false;
        }
        if let Some(l) = &self.labels
            && !l.matches(&object::labels(obj))
        {
            return false;
        }
        if let Some(f) = &self.fields
            && !f.matches(&|path: &str| Some(selector::field_value(obj, path).unwrap_or_default()))
        {
            return false;
        }
        true
    }

    fn matches_stored(&self, kv: &Kv) -> ApiResult<bool> {
        let obj: Value = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("stored object {}: {e}", kv.key)))?;
        Ok(self.matches(&obj))
    }
}

// -------------------------------------------------------------------- watch

/// One line of a watch stream.
fn watch_line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(r: &Resource, rv: Revision, initial_end: bool) -> Bytes {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let obj = json!({ "kind": r.kind, "apiVersion": r.api_version(), "metadata": meta });
    watch_line("BOOKMARK", obj.to_string().as_bytes())
}

fn error_line(e: &ApiError) -> Bytes {
    watch_line("ERROR", e.to_status().to_string().as_bytes())
}

impl Api {
    async fn watch(self: &Arc<Self>, req: &Request<'_>) -> ApiResult<Response> {
        let r = req.target.resource;
        let filter = Filter::from_query(r, req.query, req.target.name.clone())?;
        let prefix = r.namespace_prefix(req.target.namespace.as_deref());
        let bookmarks = req.query.flag("allowWatchBookmarks");
        let send_initial = req.query.flag("sendInitialEvents");
        let timeout = req
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(std::time::Duration::from_secs)
            // Upstream spreads unbounded watches over 30-60 minutes.
            .unwrap_or(std::time::Duration::from_secs(
                1800 + object::now_secs().rem_euclid(1800) as u64,
            ));
        let rv_param = req.query.get("resourceVersion").unwrap_or("");
        let from: Option<Revision> =
            match rv_param {
                "" | "0" => None,
                v => Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {v:?}"))
                })?),
            };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
        let api = Arc::clone(self);
        tokio::spawn(async move {
            let run = api.run_watch(r, prefix, filter, from, bookmarks, send_initial, &tx);
            let _ = tokio::time::timeout(timeout, run).await;
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::io::Error>(http_body::Frame::data(b)), rx))
        });
        let body = http_body_util::StreamBody::new(stream).boxed();
        let mut resp = http::Response::new(body);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }

    /// Streams events into `tx` until the client goes away or the store watch ends.
    /// Served from the watch cache; a resume from before the cache's history goes to the
    /// store, which answers 410 Gone when that history is compacted.
    #[allow(clippy::too_many_arguments)]
    async fn run_watch(
        &self,
        r: &'static Resource,
        prefix: String,
        filter: Filter,
        from: Option<Revision>,
        bookmarks: bool,
        send_initial: bool,
        tx: &tokio::sync::mpsc::Sender<Bytes>,
    ) {
        use crate::watchcache::Start;
        let fail = |e: StoreError| error_line(&ApiError::from_store(e, r.group, r.plural, ""));
        let in_scope = |key: &str| key.starts_with(&prefix);
        let mut source = match self.cache.watch(&r.prefix(), from).await {
            Ok(sub) => Source::Cache(sub),
            Err(StoreError::Compacted { .. }) if from.is_some() => {
                match self.store.watch(&prefix, from.unwrap_or_default()).await {
                    Ok(s) => Source::Store(s),
                    Err(e) => {
                        let _ = tx.send(fail(e)).await;
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(fail(e)).await;
                return;
            }
        };
        let mut last_rv = from.unwrap_or_default();
        if let Source::Cache(sub) = &mut source {
            match std::mem::replace(&mut sub.start, Start::Replay(Vec::new())) {
                Start::Snapshot { objects, revision } => {
                    for kv in objects.iter().filter(|kv| in_scope(&kv.key)) {
                        let wanted =
                            filter.is_empty() || filter.matches_stored(kv).unwrap_or(false);
                        let line = watch_line("ADDED", &codec::with_rv(&kv.value, kv.mod_revision));
                        if wanted && tx.send(line).await.is_err() {
                            return;
                        }
                    }
                    last_rv = revision;
                    if send_initial
                        && bookmarks
                        && tx.send(bookmark(r, revision, true)).await.is_err()
                    {
                        return;
                    }
                }
                Start::Replay(events) => {
                    for ev in events {
                        last_rv = ev.revision();
                        if !in_scope(ev.key()) {
                            continue;
                        }
                        if let Some(line) = self.event_line(&filter, &ev)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
        let mut ticker = tokio::time::interval(self.bookmark_interval);
        ticker.tick().await;
        loop {
            let next = tokio::select! {
                e = source.next() => e,
                _ = ticker.tick() => {
                    if bookmarks && tx.send(bookmark(r, last_rv, false)).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let event = match next {
                None => return,
                Some(Err(e)) => {
                    let _ = tx.send(fail(e)).await;
                    return;
                }
                Some(Ok(ev)) => ev,
            };
            last_rv = event.revision();
            if !in_scope(event.key()) {
                continue;
            }
            if let Some(line) = self.event_line(&filter, &event)
                && tx.send(line).await.is_err()
            {
                return;
            }
        }
    }

    /// The line a watcher with `filter` sees for a store event, if any: an object that
    /// starts matching is ADDED, one that stops matching is DELETED, as upstream's cacher.
    fn event_line(&self, filter: &Filter, event: &crate::store::Event) -> Option<Bytes> {
        use crate::store::Event;
        let matches = |kv: &Kv| filter.is_empty() || filter.matches_stored(kv).unwrap_or(false);
        match event {
            Event::Put { kv, prev } => {
                let now = matches(kv);
                let before = prev.as_ref().is_some_and(&matches);
                match (before, now) {
                    (false, true) => Some(watch_line(
                        "ADDED",
                        &codec::with_rv(&kv.value, kv.mod_revision),
                    )),
                    (true, true) => Some(watch_line(
                        "MODIFIED",
                        &codec::with_rv(&kv.value, kv.mod_revision),
                    )),
                    // Left the selection: the last matching state, at the new revision.
                    (true, false) => prev
                        .as_ref()
                        .map(|p| watch_line("DELETED", &codec::with_rv(&p.value, kv.mod_revision))),
                    (false, false) => None,
                }
            }
            Event::Delete { prev, revision } => matches(prev)
                .then(|| watch_line("DELETED", &codec::with_rv(&prev.value, *revision))),
        }
    }
}

// ------------------------------------------------------------------- writes

/// The content type of a request body, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON object body.
fn decode_object(body: &[u8]) -> ApiResult<Value> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

/// Checks (and fills when missing) apiVersion and kind against the URL's resource.
fn check_type(
    r: &Resource,
    obj: &mut Value,
    expect_kind: &str,
    expect_version: &str,
) -> ApiResult<()> {
    let _ = r;
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(expect_version));
        }
        Some(v) if v != expect_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expect_version})"
            )));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(expect_kind));
        }
        Some(k) if k != expect_kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({expect_kind})"
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

/// Checks the object's namespace against the URL's.
fn check_namespace(r: &Resource, obj: &mut Value, ns: Option<&str>) -> ApiResult<()> {
    if !r.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let ns = ns.ok_or_else(|| {
        ApiError::bad_request("a namespace is required for this resource (use /namespaces/NS/...)")
    })?;
    match object::namespace(obj) {
        Some(n) if n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// Everything of an object but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

fn invalid(r: &Resource, obj: &Value, errors: &[FieldError]) -> ApiError {
    ApiError::invalid(r.group, r.kind, object::name(obj), errors)
}

impl Api {
    async fn read(&self, r: &Resource, ns: Option<&str>, name: &str) -> ApiResult<(Kv, Value)> {
        let key = r.key(ns, name);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, r.group, r.plural, name))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(r.group, r.plural, name))?;
        let obj = codec::decode(&kv.value, kv.mod_revision)
            .ok_or_else(|| ApiError::internal(format!("stored object {key} is not valid JSON")))?;
        Ok((kv, obj))
    }

    /// Namespaced creates need an existing namespace that is not terminating.
    async fn check_namespace_open(&self, r: &Resource, ns: Option<&str>) -> ApiResult<()> {
        let Some(ns) = ns.filter(|_| r.namespaced) else {
            return Ok(());
        };
        let nsr = registry::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("no namespaces resource"))?;
        let (_, obj) = self.read(nsr, None, ns).await?;
        if meta(&obj)
            .get("deletionTimestamp")
            .is_some_and(|v| !v.is_null())
            || obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        {
            return Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                r.plural
            )));
        }
        Ok(())
    }

    async fn create(&self, req: &Request<'_>) -> ApiResult<Response> {
        let r = req.target.resource;
        let ct = content_type(req.headers);
        if ct != "application/json" && !ct.is_empty() && ct != "*/*" {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        let mut obj = decode_object(&req.body)?;
        check_type(r, &mut obj, r.kind, &r.api_version())?;
        let ns = req.target.namespace.as_deref();
        check_namespace(r, &mut obj, ns)?;
        let generate = object::meta_str(&obj, "generateName")
            .unwrap_or("")
            .to_string();
        if object::name(&obj).is_empty() && generate.is_empty() {
            return Err(invalid(
                r,
                &obj,
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        {
            let m = meta_mut(&mut obj);
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ] {
                m.remove(k);
            }
            m.insert("uid".into(), json!(object::new_uid()));
            m.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
            m.insert("generation".into(), json!(1));
        }
        if r.kind == "Namespace"
            && let Some(s) = obj.get_mut("status").and_then(Value::as_object_mut)
        {
            s.remove("phase");
        }
        self.check_namespace_open(r, ns).await?;
        let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All");
        let mode = field_mode(req.query)?;
        for attempt in 0..8 {
            if !generate.is_empty() && (object::name(&obj).is_empty() || attempt > 0) {
                let name = format!("{generate}{}", object::random_suffix());
                meta_mut(&mut obj).insert("name".into(), json!(name));
            }
            admission::default(r, &mut obj);
            let errors = admission::validate_create(r, &obj);
            if !errors.is_empty() {
                return Err(invalid(r, &obj, &errors));
            }
            let warnings = check_fields(r, &obj, mode)?;
            let name = object::name(&obj).to_string();
            let allocated = self.allocate_service(r, None, &mut obj)?;
            if dry_run {
                self.release(&allocated);
                return Ok(with_warnings(
                    value_response(StatusCode::CREATED, &obj),
                    &warnings,
                ));
            }
            let key = r.key(ns, &name);
            match self.store.create(&key, codec::encode(&obj)).await {
                Ok(kv) => {
                    let resp = json_response(
                        StatusCode::CREATED,
                        codec::with_rv(&kv.value, kv.mod_revision),
                    );
                    return Ok(with_warnings(resp, &warnings));
                }
                Err(StoreError::AlreadyExists(_))
                    if !generate.is_empty()
                        && object::name(&obj).starts_with(&generate)
                        && attempt < 7 =>
                {
                    self.release(&allocated);
                    continue;
                }
                Err(e) => {
                    self.release(&allocated);
                    return Err(ApiError::from_store(e, r.group, r.plural, &name));
                }
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// Writes `new` over `kv` (whose object is `old`), running the update pipeline.
    /// `sub` is the subresource written through, if any.
    #[allow(clippy::too_many_arguments)]
    async fn write_update(
        &self,
        r: &Resource,
        kv: &Kv,
        old: &Value,
        mut new: Value,
        sub: Option<&str>,
        dry_run: bool,
        mode: crate::strict::Mode,
    ) -> ApiResult<Response> {
        let name = object::name(old).to_string();
        // The subresource decides which part of the object the write may change.
        new = match sub {
            Some("status") => {
                let mut merged = old.clone();
                match new.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                merged
            }
            Some("finalize") => {
                let mut merged = old.clone();
                merged["spec"]["finalizers"] = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                merged
            }
            _ => {
                if r.has_status() {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
        };
        // System fields cannot be changed by clients.
        {
            let om = meta(old).clone();
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ] {
                match om.get(k) {
                    Some(v) => m.insert(k.to_string(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.remove("managedFields");
            m.remove("selfLink");
            m.insert("name".into(), json!(name));
        }
        admission::default(r, &mut new);
        if spec_part(old) != spec_part(&new) {
            let g = meta(old)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let errors = admission::validate_update(r, old, &new);
        if !errors.is_empty() {
            return Err(invalid(r, &new, &errors));
        }
        let warnings = check_fields(r, &new, mode)?;
        let allocated = self.allocate_service(r, Some(old), &mut new)?;
        if dry_run {
            self.release(&allocated);
            return Ok(with_warnings(
                value_response(StatusCode::OK, &new),
                &warnings,
            ));
        }
        // A deleted object whose last finalizer is gone is removed for good.
        let deleting = meta(&new)
            .get("deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let ns_finalizers_done = r.kind != "Namespace"
            || new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty());
        if deleting && object::finalizers(&new).is_empty() && ns_finalizers_done {
            let (prev, _) = self
                .store
                .delete(&kv.key, Some(kv.mod_revision))
                .await
                .map_err(|e| ApiError::from_store(e, r.group, r.plural, &name))?;
            self.release_service(r, &new);
            return Ok(json_response(
                StatusCode::OK,
                codec::with_rv(&prev.value, prev.mod_revision),
            ));
        }
        match self
            .store
            .update(&kv.key, codec::encode(&new), Some(kv.mod_revision))
            .await
        {
            Ok(kv) => {
                self.release_dropped_ports(r, old, &new);
                let resp =
                    json_response(StatusCode::OK, codec::with_rv(&kv.value, kv.mod_revision));
                Ok(with_warnings(resp, &warnings))
            }
            Err(e) => {
                self.release(&allocated);
                Err(ApiError::from_store(e, r.group, r.plural, &name))
            }
        }
    }

    async fn update(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let ct = content_type(req.headers);
        if ct != "application/json" && !ct.is_empty() {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        let mut new = decode_object(&req.body)?;
        check_type(r, &mut new, r.kind, &r.api_version())?;
        check_namespace(r, &mut new, req.target.namespace.as_deref())?;
        let body_name = object::name(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let (kv, old) = self.read(r, req.target.namespace.as_deref(), name).await?;
        if let Some(rv) = object::meta_str(&new, "resourceVersion").filter(|v| !v.is_empty())
            && rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict(r.group, r.plural, name));
        }
        let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All");
        self.write_update(
            r,
            &kv,
            &old,
            new,
            req.target.subresource.as_deref(),
            dry_run,
            field_mode(req.query)?,
        )
        .await
    }

    async fn patch(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let ct = content_type(req.headers);
        if req.body.len() > MAX_BODY {
            return Err(ApiError::too_large(MAX_BODY));
        }
        let patch: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let sub = req.target.subresource.as_deref();
        let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All");
        // Retry on a concurrent write unless the patch pins a resourceVersion itself.
        for _ in 0..32 {
            let (kv, old) = self.read(r, req.target.namespace.as_deref(), name).await?;
            let base = if sub == Some("scale") {
                scale_of(r, &old)?
            } else {
                old.clone()
            };
            let patched = match ct.as_str() {
                "application/json-patch+json" => crate::patch::json_patch(&base, &patch)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                "application/merge-patch+json" => {
                    if !patch.is_object() {
                        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                    }
                    let mut v = base.clone();
                    crate::patch::json_merge_patch(&mut v, &patch);
                    v
                }
                "application/strategic-merge-patch+json" => {
                    let kind = if sub == Some("scale") {
                        "Scale"
                    } else {
                        r.kind
                    };
                    crate::patch::strategic_merge_patch(&base, &patch, kind)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
                "application/apply-patch+yaml" => {
                    return Err(ApiError::unsupported_media_type(&ct));
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let mut patched = patched;
            if !patched.is_object() {
                return Err(ApiError::bad_request("the patch result is not an object"));
            }
            let pinned = object::meta_str(&patched, "resourceVersion")
                .filter(|v| !v.is_empty() && *v != kv.mod_revision.to_string())
                .is_some();
            if pinned {
                return Err(ApiError::conflict(r.group, r.plural, name));
            }
            let new = if sub == Some("scale") {
                apply_scale(&old, &patched)?
            } else {
                check_type(r, &mut patched, r.kind, &r.api_version())?;
                patched
            };
            let patch_sub = if sub == Some("scale") { None } else { sub };
            match self
                .write_update(
                    r,
                    &kv,
                    &old,
                    new,
                    patch_sub,
                    dry_run,
                    field_mode(req.query)?,
                )
                .await
            {
                Err(e) if e.reason == "Conflict" && !patch_pins_rv(&patch) => continue,
                Ok(resp) if sub == Some("scale") => {
                    let (_, updated) = self.read(r, req.target.namespace.as_deref(), name).await?;
                    let _ = resp;
                    return Ok(value_response(StatusCode::OK, &scale_of(r, &updated)?));
                }
                other => return other,
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    /// `pods/NAME/log`, streamed from the kubelet of the pod's node.
    async fn logs(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let (_, pod) = self.read(r, req.target.namespace.as_deref(), name).await?;
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let nodes = registry::find("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal("no nodes resource"))?;
        let (_, node) = self.read(nodes, None, node_name).await?;
        let (host, port, path) = crate::proxy::log_location(&pod, &node, req.query)?;
        let client = self
            .kubelet
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("no kubelet client configured"))?;
        client.get(&host, port, &path).await
    }

    async fn get_scale(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let (_, obj) = self.read(r, req.target.namespace.as_deref(), name).await?;
        Ok(value_response(StatusCode::OK, &scale_of(r, &obj)?))
    }

    async fn update_scale(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let scale = decode_object(&req.body)?;
        let (kv, old) = self.read(r, req.target.namespace.as_deref(), name).await?;
        if let Some(rv) = object::meta_str(&scale, "resourceVersion").filter(|v| !v.is_empty())
            && rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict(r.group, r.plural, name));
        }
        let new = apply_scale(&old, &scale)?;
        self.write_update(r, &kv, &old, new, None, false, crate::strict::Mode::Ignore)
            .await?;
        let (_, updated) = self.read(r, req.target.namespace.as_deref(), name).await?;
        Ok(value_response(StatusCode::OK, &scale_of(r, &updated)?))
    }

    /// `pods/NAME/binding`: assigns a pod to a node, once.
    async fn bind(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let binding = decode_object(&req.body)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                &[FieldError::required("target.name", "")],
            ));
        }
        for _ in 0..8 {
            let (kv, old) = self.read(r, req.target.namespace.as_deref(), name).await?;
            if meta(&old)
                .get("deletionTimestamp")
                .is_some_and(|v| !v.is_null())
            {
                return Err(ApiError::conflict(r.group, r.plural, name));
            }
            if let Some(current) = old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                let mut e = ApiError::conflict(r.group, r.plural, name);
                e.message = format!(
                    "Operation cannot be fulfilled on pods/binding {name:?}: pod {name} is already assigned to node {current:?}"
                );
                return Err(e);
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = json!(node);
            set_condition(&mut new, "PodScheduled", "True", "", "");
            match self
                .store
                .update(&kv.key, codec::encode(&new), Some(kv.mod_revision))
                .await
            {
                Ok(_) => {
                    let s = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 });
                    return Ok(value_response(StatusCode::CREATED, &s));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, r.group, r.plural, name)),
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    async fn delete(&self, req: &Request<'_>, name: &str) -> ApiResult<Response> {
        let r = req.target.resource;
        let opts = delete_options(req)?;
        let ns = req.target.namespace.as_deref();
        for _ in 0..32 {
            let (kv, old) = self.read(r, ns, name).await?;
            match self.delete_one(r, &kv, &old, &opts).await {
                Err(e) if e.reason == "Conflict" && opts.precondition_rv.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    async fn delete_one(
        &self,
        r: &Resource,
        kv: &Kv,
        old: &Value,
        opts: &DeleteOptions,
    ) -> ApiResult<Response> {
        let name = object::name(old).to_string();
        if let Some(uid) = &opts.precondition_uid
            && object::meta_str(old, "uid") != Some(uid)
        {
            let mut e = ApiError::conflict(r.group, r.plural, &name);
            e.message = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                object::meta_str(old, "uid").unwrap_or("")
            );
            return Err(e);
        }
        if let Some(rv) = &opts.precondition_rv
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict(r.group, r.plural, &name));
        }
        if opts.dry_run {
            return Ok(json_response(
                StatusCode::OK,
                codec::with_rv(&kv.value, kv.mod_revision),
            ));
        }
        let mut new = old.clone();
        let already_deleting = meta(old)
            .get("deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        // Propagation policy becomes a finalizer for the garbage collector.
        let mut finalizers = object::finalizers(old);
        match opts.propagation.as_deref() {
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into())
            }
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into())
            }
            _ => {}
        }
        let graceful = self.grace_period(r, old, opts);
        if r.kind == "Namespace" {
            // Namespaces terminate: the namespace controller empties them, then finalizes.
            if !already_deleting {
                meta_mut(&mut new).insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
            }
            new["status"]["phase"] = json!("Terminating");
            meta_mut(&mut new).insert("finalizers".into(), json!(finalizers));
            let spec_done = new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty());
            if finalizers.is_empty() && spec_done {
                return self.remove(r, kv, &name).await;
            }
            return self.store_update(r, kv, &new, &name).await;
        }
        if finalizers.is_empty() && graceful.is_none() {
            return self.remove(r, kv, &name).await;
        }
        {
            let m = meta_mut(&mut new);
            m.insert("finalizers".into(), json!(finalizers));
            if finalizers.is_empty() {
                m.remove("finalizers");
            }
            let grace = graceful.unwrap_or(0);
            let current = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
            // A second delete may only shorten the grace period.
            if !already_deleting || current.is_some_and(|c| grace < c) {
                m.insert(
                    "deletionTimestamp".into(),
                    json!(object::rfc3339(object::now_secs() + grace)),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
        }
        if already_deleting && new == *old {
            return Ok(json_response(
                StatusCode::OK,
                codec::with_rv(&kv.value, kv.mod_revision),
            ));
        }
        self.store_update(r, kv, &new, &name).await
    }

    /// The grace period for deleting `obj`: Some(seconds) when the deletion must wait for
    /// the kubelet (bound, non-terminal pods), None when the object can go now.
    fn grace_period(&self, r: &Resource, obj: &Value, opts: &DeleteOptions) -> Option<i64> {
        if r.kind != "Pod" {
            return None;
        }
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !bound || phase == "Succeeded" || phase == "Failed" {
            return None;
        }
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        // Grace 0 deletes at once: a forced delete by a user, or the kubelet's final delete
        // after the containers stopped.
        let grace = opts.grace.unwrap_or(default);
        (grace > 0).then_some(grace)
    }

    async fn remove(&self, r: &Resource, kv: &Kv, name: &str) -> ApiResult<Response> {
        let (prev, _) = self
            .store
            .delete(&kv.key, Some(kv.mod_revision))
            .await
            .map_err(|e| ApiError::from_store(e, r.group, r.plural, name))?;
        if let Some(obj) = codec::decode(&prev.value, prev.mod_revision) {
            self.release_service(r, &obj);
        }
        Ok(json_response(
            StatusCode::OK,
            codec::with_rv(&prev.value, prev.mod_revision),
        ))
    }

    async fn store_update(
        &self,
        r: &Resource,
        kv: &Kv,
        new: &Value,
        name: &str,
    ) -> ApiResult<Response> {
        let kv = self
            .store
            .update(&kv.key, codec::encode(new), Some(kv.mod_revision))
            .await
            .map_err(|e| ApiError::from_store(e, r.group, r.plural, name))?;
        Ok(json_response(
            StatusCode::OK,
            codec::with_rv(&kv.value, kv.mod_revision),
        ))
    }

    async fn delete_collection(&self, req: &Request<'_>) -> ApiResult<Response> {
        let r = req.target.resource;
        let filter = Filter::from_query(r, req.query, None)?;
        let opts = delete_options(req)?;
        let prefix = r.namespace_prefix(req.target.namespace.as_deref());
        let page = self
            .store
            .list(&prefix, None, 0, None)
            .await
            .map_err(|e| ApiError::from_store(e, r.group, r.plural, ""))?;
        let mut deleted = Vec::new();
        for kv in page.items {
            if !filter.is_empty() && !filter.matches_stored(&kv)? {
                continue;
            }
            let Some(obj) = codec::decode(&kv.value, kv.mod_revision) else {
                continue;
            };
            match self.delete_one(r, &kv, &obj, &opts).await {
                Ok(_) => deleted.push(obj),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        let rv = self
            .store
            .revision()
            .await
            .map_err(|e| ApiError::from_store(e, r.group, r.plural, ""))?;
        Ok(value_response(
            StatusCode::OK,
            &json!({ "kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": { "resourceVersion": rv.to_string() }, "items": deleted }),
        ))
    }
}

/// The `fieldValidation` mode of a request.
fn field_mode(q: &Query) -> ApiResult<crate::strict::Mode> {
    crate::strict::Mode::from_query(q.get("fieldValidation")).map_err(ApiError::bad_request)
}

/// Decodes `obj` as its kind: a 400 when it cannot be decoded, a 400 for unknown fields in
/// Strict mode, and the warnings to send in Warn mode.
fn check_fields(r: &Resource, obj: &Value, mode: crate::strict::Mode) -> ApiResult<Vec<String>> {
    use crate::strict::Mode;
    let prefix = format!(
        "{} in version {:?} cannot be handled as a {}",
        r.kind, r.version, r.kind
    );
    match crate::strict::unknown_fields(r.kind, obj) {
        Err(e) => Err(ApiError::bad_request(format!("{prefix}: {e}"))),
        Ok(unknown) if unknown.is_empty() || mode == Mode::Ignore => Ok(Vec::new()),
        Ok(unknown) => {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            if mode == Mode::Strict {
                Err(ApiError::bad_request(format!(
                    "{prefix}: strict decoding error: {}",
                    msgs.join(", ")
                )))
            } else {
                Ok(msgs)
            }
        }
    }
}

/// Adds one `Warning` header per message, as upstream (`299 - "message"`).
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn patch_pins_rv(patch: &Value) -> bool {
    patch
        .pointer("/metadata/resourceVersion")
        .is_some_and(|v| v.is_string())
        || patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
            })
        })
}

/// Sets (or replaces) a status condition.
pub fn set_condition(obj: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let mut cond = json!({ "type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339() });
    if !reason.is_empty() {
        cond["reason"] = json!(reason);
    }
    if !message.is_empty() {
        cond["message"] = json!(message);
    }
    if let Some(list) = obj["status"]["conditions"].as_array_mut() {
        match list
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        {
            Some(c) => *c = cond,
            None => list.push(cond),
        }
    }
}

/// The autoscaling/v1 Scale of a scalable object.
fn scale_of(r: &Resource, obj: &Value) -> ApiResult<Value> {
    if !r.subresources.contains(&"scale") {
        return Err(ApiError::no_route());
    }
    let m = meta(obj);
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
        "status": { "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector },
    }))
}

/// Applies a Scale's spec.replicas to its parent object.
fn apply_scale(parent: &Value, scale: &Value) -> ApiResult<Value> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if !replicas.is_i64() || replicas.as_i64().unwrap_or(-1) < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            object::name(parent),
            &[FieldError::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut new = parent.clone();
    new["spec"]["replicas"] = replicas;
    Ok(new)
}

/// Options of a delete, from the body (DeleteOptions) and the query.
#[derive(Debug, Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    precondition_uid: Option<String>,
    precondition_rv: Option<String>,
    dry_run: bool,
}

fn delete_options(req: &Request<'_>) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions::default();
    if !req.body.is_empty() {
        let body = decode_object(&req.body)?;
        o.grace = body.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.propagation = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from);
        if body.get("orphanDependents") == Some(&json!(true)) {
            o.propagation = Some("Orphan".into());
        }
        o.precondition_uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from);
        o.precondition_rv = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        o.dry_run = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    }
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        o.grace = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = req.query.get("propagationPolicy") {
        o.propagation = Some(p.to_string());
    }
    if let Some(p) = &o.propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "",
            "DeleteOptions",
            "",
            &[FieldError::not_supported(
                "propagationPolicy",
                &json!(p),
                &["Foreground", "Background", "Orphan"],
            )],
        ));
    }
    if req.query.get("dryRun") == Some("All") {
        o.dry_run = true;
    }
    Ok(o)
}

// ------------------------------------------------------- service allocation

/// What one write allocated, to release if the write fails.
#[derive(Debug, Default)]
pub struct Allocated {
    ips: Vec<std::net::Ipv4Addr>,
    ports: Vec<u16>,
}

fn node_ports(svc: &Value) -> Vec<u16> {
    let mut out: Vec<u16> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    if let Some(h) = svc
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
    {
        out.push(h);
    }
    out
}

fn cluster_ip(svc: &Value) -> Option<std::net::Ipv4Addr> {
    svc.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

impl Api {
    /// Allocates the ClusterIP and NodePorts a Service (new, or updated from `old`) needs.
    fn allocate_service(
        &self,
        r: &Resource,
        old: Option<&Value>,
        svc: &mut Value,
    ) -> ApiResult<Allocated> {
        let mut got = Allocated::default();
        if r.kind != "Service" || !r.group.is_empty() {
            return Ok(got);
        }
        let name = object::name(svc).to_string();
        let fail = |e: crate::alloc::AllocError, field: &str, value: Value| {
            ApiError::invalid(
                "",
                "Service",
                &name,
                &[FieldError::invalid(field, &value, &e.to_string())],
            )
        };
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if let Err(e) = self.allocate_service_inner(old, svc, &ty, &mut got) {
            self.release(&got);
            let (field, value) = e.1;
            return Err(fail(e.0, &field, value));
        }
        Ok(got)
    }

    fn allocate_service_inner(
        &self,
        old: Option<&Value>,
        svc: &mut Value,
        ty: &str,
        got: &mut Allocated,
    ) -> Result<(), (crate::alloc::AllocError, (String, Value))> {
        // ClusterIP: kept from the old object, or allocated (requested or next free).
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if ty != "ExternalName" && requested != "None" {
            let kept = old.and_then(cluster_ip);
            let ip = match (kept, requested.as_str()) {
                (Some(ip), "") => ip,
                (Some(ip), r) if r == ip.to_string() => ip,
                (_, r) => {
                    let want = if r.is_empty() {
                        None
                    } else {
                        Some(r.parse().map_err(|_| {
                            (
                                crate::alloc::AllocError::OutOfRange(
                                    "must be a valid IP address".into(),
                                ),
                                ("spec.clusterIP".to_string(), json!(r)),
                            )
                        })?)
                    };
                    let ip = self
                        .alloc
                        .allocate_ip(want)
                        .map_err(|e| (e, ("spec.clusterIPs".to_string(), json!(r))))?;
                    got.ips.push(ip);
                    ip
                }
            };
            svc["spec"]["clusterIP"] = json!(ip.to_string());
            svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        } else if requested == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
        }
        // NodePorts for NodePort and LoadBalancer Services.
        let wants_ports = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports = old.map(node_ports).unwrap_or_default();
        if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                if !wants_ports {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                    continue;
                }
                let want = p
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .filter(|n| *n != 0);
                let port =
                    match want {
                        Some(n) if old_ports.contains(&(n as u16)) => n as u16,
                        Some(n) => {
                            let n16 = u16::try_from(n).map_err(|_| {
                                (
                                    crate::alloc::AllocError::OutOfRange(
                                        "provided port is not in the valid range".into(),
                                    ),
                                    (format!("spec.ports[{i}].nodePort"), json!(n)),
                                )
                            })?;
                            let port = self.alloc.allocate_port(Some(n16)).map_err(|e| {
                                (e, (format!("spec.ports[{i}].nodePort"), json!(n)))
                            })?;
                            got.ports.push(port);
                            port
                        }
                        None => {
                            let port = self.alloc.allocate_port(None).map_err(|e| {
                                (e, (format!("spec.ports[{i}].nodePort"), json!(0)))
                            })?;
                            got.ports.push(port);
                            port
                        }
                    };
                p["nodePort"] = json!(port);
            }
        }
        let local = svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local");
        if ty == "LoadBalancer" && local {
            let have = svc
                .pointer("/spec/healthCheckNodePort")
                .and_then(Value::as_u64)
                .filter(|n| *n != 0);
            let port = match have {
                Some(n) if old_ports.contains(&(n as u16)) => n as u16,
                other => {
                    let want = other.and_then(|n| u16::try_from(n).ok());
                    let port = self
                        .alloc
                        .allocate_port(want)
                        .map_err(|e| (e, ("spec.healthCheckNodePort".to_string(), json!(other))))?;
                    got.ports.push(port);
                    port
                }
            };
            svc["spec"]["healthCheckNodePort"] = json!(port);
        } else if let Some(m) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            m.remove("healthCheckNodePort");
        }
        Ok(())
    }

    fn release(&self, a: &Allocated) {
        for ip in &a.ips {
            self.alloc.release_ip(*ip);
        }
        for p in &a.ports {
            self.alloc.release_port(*p);
        }
    }

    /// Releases everything a deleted Service held.
    fn release_service(&self, r: &Resource, svc: &Value) {
        if r.kind != "Service" || !r.group.is_empty() {
            return;
        }
        if let Some(ip) = cluster_ip(svc) {
            self.alloc.release_ip(ip);
        }
        for p in node_ports(svc) {
            self.alloc.release_port(p);
        }
    }

    /// Releases NodePorts an updated Service no longer uses.
    fn release_dropped_ports(&self, r: &Resource, old: &Value, new: &Value) {
        if r.kind != "Service" || !r.group.is_empty() {
            return;
        }
        let keep = node_ports(new);
        for p in node_ports(old) {
            if !keep.contains(&p) {
                self.alloc.release_port(p);
            }
        }
    }

    /// Marks the addresses and ports of every stored Service as taken (on start).
    pub async fn load_allocations(&self) -> crate::Result<()> {
        let Some(svc) = registry::find("", "v1", "services") else {
            return Ok(());
        };
        let page = self.store.list(&svc.prefix(), None, 0, None).await?;
        for kv in page.items {
            let Some(obj) = codec::decode(&kv.value, kv.mod_revision) else {
                continue;
            };
            if let Some(ip) = cluster_ip(&obj) {
                let _ = self.alloc.allocate_ip(Some(ip));
            }
            for p in node_ports(&obj) {
                let _ = self.alloc.allocate_port(Some(p));
            }
        }
        Ok(())
    }
}
