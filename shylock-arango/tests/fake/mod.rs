//! A fake ArangoDB HTTP server for tests.
//!
//! It answers the requests arangors and the backend send with the status
//! codes, JSON bodies and error numbers ArangoDB 3.11/3.12 documents (auth
//! 401/11, unknown database 404/1228, duplicate collection 409/1207,
//! unknown collection 404/1203, missing bind parameter 400/1551, unknown
//! query 400/1501, unique constraint 409/1210, write conflict 409/1200), and
//! emulates the effects of the backend's exact AQL queries on an in-memory
//! store whose clock is the fake server's own (`DATE_NOW()`).
//!
//! Like the real `UPSERT`, its emulation is not atomic: the lookup and the
//! write are separate steps with a pause between them, so concurrent
//! first-time creators really race and the losers get 1210, and a document
//! changed between lookup and write gives the writer 1200.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};
use shylock_arango::queries;

#[derive(Default)]
struct Collection {
    docs: HashMap<String, (u64, Map<String, Value>)>,
    ttl_index: Option<(String, Vec<String>, u64)>,
}

#[derive(Default)]
struct Db {
    collections: HashMap<String, Collection>,
}

/// A canned error for the next query of one kind.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// Which query (one of `shylock_arango::queries`).
    pub(crate) query: &'static str,
    /// HTTP status.
    pub(crate) status: u16,
    /// ArangoDB error number.
    pub(crate) error_num: u16,
    /// Message.
    pub(crate) message: &'static str,
}

#[derive(Default)]
struct Inner {
    dbs: HashMap<String, Db>,
    user: String,
    password: String,
    tokens: HashSet<String>,
    faults: VecDeque<Fault>,
    next_rev: u64,
    /// Time the fake's clock is ahead of the real one (for expiry tests).
    clock_offset_ms: i64,
    /// Answer `GET /` without `Server: ArangoDB`, as a server started with
    /// `--http.hide-product-header` (or behind a proxy that strips it).
    hide_product_header: bool,
    /// Successful `POST /_open/auth` calls.
    logins: u64,
}

/// A running fake server.
#[derive(Clone)]
pub(crate) struct FakeArango {
    inner: Arc<Mutex<Inner>>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl FakeArango {
    /// Starts a server with user `root` / `secret` and databases `_system`
    /// and `locks`.
    pub(crate) async fn start() -> Self {
        let mut inner = Inner {
            user: "root".into(),
            password: "secret".into(),
            ..Inner::default()
        };
        inner.dbs.insert("_system".into(), Db::default());
        inner.dbs.insert("locks".into(), Db::default());
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new()
            .route("/", get(root))
            .route("/_open/auth", post(open_auth))
            .route("/_db/{db}/_api/database/current", get(database_current))
            .route("/_db/{db}/_api/collection", post(create_collection))
            .route("/_db/{db}/_api/collection/{name}", get(get_collection))
            .route("/_db/{db}/_api/index", post(create_index))
            .route("/_db/{db}/_api/cursor", post(cursor))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeArango { inner, addr }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every JWT issued so far, as the server's session timeout does:
    /// requests bearing one get 401 from now on.
    pub(crate) fn expire_tokens(&self) {
        self.inner.lock().unwrap().tokens.clear();
    }

    /// How many JWT logins succeeded.
    pub(crate) fn logins(&self) -> u64 {
        self.inner.lock().unwrap().logins
    }

    /// Whether `GET /` omits the `Server: ArangoDB` header.
    pub(crate) fn hide_product_header(&self, hide: bool) {
        self.inner.lock().unwrap().hide_product_header = hide;
    }

    /// Makes the next query of `fault.query` fail as given.
    pub(crate) fn inject(&self, fault: Fault) {
        self.inner.lock().unwrap().faults.push_back(fault);
    }

    /// Number of lock documents in `db`.`coll`.
    pub(crate) fn documents(&self, db: &str, coll: &str) -> Vec<Map<String, Value>> {
        let inner = self.inner.lock().unwrap();
        inner
            .dbs
            .get(db)
            .and_then(|d| d.collections.get(coll))
            .map(|c| c.docs.values().map(|(_, d)| d.clone()).collect())
            .unwrap_or_default()
    }

    /// Stores `doc` under `key` as another program might have written it.
    pub(crate) fn put_document(
        &self,
        db: &str,
        coll: &str,
        key: &str,
        mut doc: Map<String, Value>,
    ) {
        let mut inner = self.inner.lock().unwrap();
        inner.next_rev += 1;
        let rev = inner.next_rev;
        doc.insert("_key".into(), json!(key));
        inner
            .dbs
            .get_mut(db)
            .unwrap()
            .collections
            .entry(coll.to_owned())
            .or_default()
            .docs
            .insert(key.to_owned(), (rev, doc));
    }

    /// Removes every document, as the TTL index eventually does.
    pub(crate) fn garbage_collect(&self, db: &str, coll: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(c) = inner
            .dbs
            .get_mut(db)
            .and_then(|d| d.collections.get_mut(coll))
        {
            c.docs.clear();
        }
    }
}

type Shared = Arc<Mutex<Inner>>;

fn error(status: u16, error_num: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({ "error": true, "code": status.as_u16(), "errorNum": error_num, "errorMessage": message });
    with_server_header((status, axum::Json(body)).into_response())
}

fn ok(status: u16, body: Value) -> Response {
    with_server_header((StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response())
}

fn with_server_header(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("server", HeaderValue::from_static("ArangoDB"));
    response
}

fn unauthorized() -> Response {
    let mut r = error(401, 11, "not authorized to execute this request");
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer token_type=\"JWT\", realm=\"ArangoDB\""),
    );
    r
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let rest = rest.trim_end_matches('=');
        let Ok(decoded) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(rest) else {
            return false;
        };
        decoded == format!("{}:{}", inner.user, inner.password).into_bytes()
    } else if scheme.eq_ignore_ascii_case("bearer") {
        inner.tokens.contains(rest)
    } else {
        false
    }
}

/// Checks auth, then the database (ArangoDB resolves the database first,
/// but answers 401 for unauthenticated requests either way).
#[allow(clippy::result_large_err)] // a test helper whose error is the reply
fn check(inner: &Inner, headers: &HeaderMap, db: &str) -> Result<(), Response> {
    if !authorized(inner, headers) {
        return Err(unauthorized());
    }
    if !inner.dbs.contains_key(db) {
        return Err(error(404, 1228, "database not found"));
    }
    Ok(())
}

async fn root(State(state): State<Shared>) -> Response {
    let mut response = ok(
        200,
        json!({ "server": "arango", "version": "3.12.0", "license": "community" }),
    );
    if state.lock().unwrap().hide_product_header {
        response.headers_mut().remove("server");
    }
    response
}

async fn open_auth(State(state): State<Shared>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, 600, "invalid JSON");
    };
    let mut inner = state.lock().unwrap();
    if body["username"] == json!(inner.user) && body["password"] == json!(inner.password) {
        let token = format!("jwt-{}", uuid::Uuid::new_v4());
        inner.tokens.insert(token.clone());
        inner.logins += 1;
        ok(200, json!({ "jwt": token }))
    } else {
        error(401, 401, "Wrong credentials")
    }
}

async fn database_current(
    State(state): State<Shared>,
    Path(db): Path<String>,
    headers: HeaderMap,
) -> Response {
    let inner = state.lock().unwrap();
    if let Err(r) = check(&inner, &headers, &db) {
        return r;
    }
    ok(
        200,
        json!({ "error": false, "code": 200, "result": { "id": "1", "name": db, "isSystem": db == "_system", "path": "none" } }),
    )
}

fn collection_info(name: &str) -> Value {
    json!({
        "error": false, "code": 200, "id": "70137", "name": name, "type": 2, "status": 3,
        "statusString": "loaded", "isSystem": false, "globallyUniqueId": format!("h5C3/{name}"),
        "waitForSync": false, "writeConcern": 1, "cacheEnabled": false, "schema": null,
        "keyOptions": { "allowUserKeys": true, "type": "traditional", "lastValue": 0 },
        "computedValues": null, "syncByRevision": true
    })
}

async fn create_collection(
    State(state): State<Shared>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = state.lock().unwrap();
    if let Err(r) = check(&inner, &headers, &db) {
        return r;
    }
    let Some(name) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["name"].as_str().map(str::to_owned))
    else {
        return error(400, 1208, "illegal name");
    };
    let db = inner.dbs.get_mut(&db).unwrap();
    if db.collections.contains_key(&name) {
        return error(409, 1207, "duplicate name");
    }
    db.collections.insert(name.clone(), Collection::default());
    ok(200, collection_info(&name))
}

async fn get_collection(
    State(state): State<Shared>,
    Path((db, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let inner = state.lock().unwrap();
    if let Err(r) = check(&inner, &headers, &db) {
        return r;
    }
    if inner.dbs[&db].collections.contains_key(&name) {
        ok(200, collection_info(&name))
    } else {
        error(404, 1203, &format!("collection or view not found: {name}"))
    }
}

async fn create_index(
    State(state): State<Shared>,
    Path(db): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = state.lock().unwrap();
    if let Err(r) = check(&inner, &headers, &db) {
        return r;
    }
    let Some(coll_name) = params.get("collection") else {
        return error(400, 10, "collection parameter missing");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, 600, "invalid JSON");
    };
    let Some(coll) = inner
        .dbs
        .get_mut(&db)
        .unwrap()
        .collections
        .get_mut(coll_name)
    else {
        return error(
            404,
            1203,
            &format!("collection or view not found: {coll_name}"),
        );
    };
    if body["type"] != "ttl" {
        return error(400, 10, "only ttl indexes are emulated");
    }
    let fields: Vec<String> = serde_json::from_value(body["fields"].clone()).unwrap_or_default();
    let Some(expire_after) = body["expireAfter"].as_u64() else {
        return error(400, 10, "expireAfter missing");
    };
    let name = body["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("idx_1")
        .to_owned();
    let (status, created) = match &coll.ttl_index {
        Some((n, f, e)) if *f == fields && *e == expire_after && *n == name => (200, false),
        Some(_) => {
            return error(
                400,
                10,
                "There is already a TTL index for the collection but there can only be one",
            )
        }
        None => {
            coll.ttl_index = Some((name.clone(), fields.clone(), expire_after));
            (201, true)
        }
    };
    ok(
        status,
        json!({
            "estimates": false, "expireAfter": expire_after, "fields": fields,
            "id": format!("{coll_name}/74081"), "isNewlyCreated": created, "name": name,
            "sparse": true, "type": "ttl", "unique": false, "code": status, "error": false
        }),
    )
}

fn now_ms(inner: &Inner) -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + inner.clock_offset_ms
}

fn stats(writes: u64) -> Value {
    json!({ "warnings": [], "stats": {
        "writesExecuted": writes, "writesIgnored": 0, "documentLookups": 0, "seeks": 0,
        "scannedFull": 0, "scannedIndex": 1, "cursorsCreated": 0, "cursorsRearmed": 0,
        "cacheHits": 0, "cacheMisses": 0, "filtered": 0, "httpRequests": 0,
        "executionTime": 0.0003, "peakMemoryUsage": 0, "intermediateCommits": 0 } })
}

fn cursor_result(result: Vec<Value>, writes: u64) -> Response {
    ok(
        201,
        json!({ "result": result, "hasMore": false, "cached": false, "extra": stats(writes), "error": false, "code": 201 }),
    )
}

/// Names of the bind parameters a query declares (`@x` → `x`, `@@c` → `@c`).
fn declared_params(query: &str) -> HashSet<String> {
    let bytes = query.as_bytes();
    let mut names = HashSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' {
            let start = i + 1;
            let mut j = start;
            if j < bytes.len() && bytes[j] == b'@' {
                j += 1;
            }
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            names.insert(query[start..j].to_owned());
            i = j;
        } else {
            i += 1;
        }
    }
    names
}

fn owner_of(doc: &Map<String, Value>) -> Option<&str> {
    doc.get("owner").and_then(Value::as_str)
}

fn num(doc: &Map<String, Value>, field: &str) -> i64 {
    doc.get(field).and_then(Value::as_f64).unwrap_or(0.0) as i64
}

fn projection(doc: &Map<String, Value>) -> Value {
    // As the queries' TO_NUMBER(fence).
    json!({ "owner": doc.get("owner").cloned().unwrap_or(Value::Null), "fence": num(doc, "fence"), "expiresAtMs": doc.get("expiresAtMs").cloned().unwrap_or(Value::Null) })
}

async fn cursor(
    State(state): State<Shared>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (query, vars, coll) = {
        let mut inner = state.lock().unwrap();
        if let Err(r) = check(&inner, &headers, &db) {
            return r;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
            return error(400, 600, "invalid JSON");
        };
        let Some(query) = body["query"].as_str().map(str::to_owned) else {
            return error(400, 1502, "query is empty");
        };
        let vars = body["bindVars"].as_object().cloned().unwrap_or_default();
        let declared = declared_params(&query);
        for name in &declared {
            if !vars.contains_key(name) {
                return error(
                    400,
                    1551,
                    &format!(
                        "no value specified for declared bind parameter '{name}' (while parsing)"
                    ),
                );
            }
        }
        for name in vars.keys() {
            if !declared.contains(name) {
                return error(
                    400,
                    1552,
                    &format!(
                        "bind parameter '{name}' was not declared in the query (while parsing)"
                    ),
                );
            }
        }
        if query == fenced_write_query() {
            return fenced_write(&mut inner, &db, &vars);
        }
        let known = [
            queries::ACQUIRE,
            queries::EXTEND,
            queries::RELEASE,
            queries::INSPECT,
            queries::FORCE_RELEASE,
            queries::LIST,
            queries::CLAIM_PERMIT,
            queries::EXTEND_PERMIT,
            queries::RELEASE_PERMIT,
            queries::INSPECT_SEMAPHORE,
            queries::CLAIM_RW,
            queries::RELEASE_RW,
            queries::INSPECT_RW,
            queries::ENQUEUE,
            queries::CLAIM_FAIR,
            queries::EXTEND_TICKET,
            queries::LEAVE_QUEUE,
            queries::LIST_SEMAPHORES,
            queries::LIST_QUEUES,
        ];
        let Some(&query) = known.iter().find(|q| **q == query) else {
            return error(
                400,
                1501,
                "syntax error (the fake server only knows the backend's queries)",
            );
        };
        if let Some(pos) = inner.faults.iter().position(|f| f.query == query) {
            let f = inner.faults.remove(pos).unwrap();
            return error(f.status, f.error_num, f.message);
        }
        let coll = vars["@coll"].as_str().unwrap_or_default().to_owned();
        if !inner.dbs[&db].collections.contains_key(&coll) {
            return error(404, 1203, &format!("collection or view not found: {coll}"));
        }
        (query, vars, coll)
    };
    let key = vars
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let owner = vars.get("owner").and_then(Value::as_str).map(str::to_owned);
    let ttl = vars.get("ttl").and_then(Value::as_i64).unwrap_or(0);

    if query == queries::LIST {
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let prefix = vars["prefix"].as_str().unwrap_or_default();
        let after = vars["after"].as_str().unwrap_or_default();
        let limit = vars["limit"].as_u64().unwrap_or(0) as usize;
        let mut rows: Vec<(String, Value)> = inner.dbs[&db].collections[&coll]
            .docs
            .values()
            .map(|(_, d)| d)
            .filter(|d| {
                let key = d.get("sortKey").and_then(Value::as_str).unwrap_or_default();
                key.starts_with(prefix)
                    && key > after
                    && owner_of(d).is_some()
                    && num(d, "expiresAtMs") >= now
            })
            .map(|d| {
                let key = d["sortKey"].as_str().unwrap_or_default().to_owned();
                let row = json!({ "name": d["name"], "owner": d["owner"], "fence": d["fence"], "expiresAtMs": d["expiresAtMs"] });
                (key, row)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        return cursor_result(rows.into_iter().take(limit).map(|(_, r)| r).collect(), 0);
    }
    if query == queries::LIST_SEMAPHORES || query == queries::LIST_QUEUES {
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let prefix = vars["prefix"].as_str().unwrap_or_default();
        let limit = vars["limit"].as_u64().unwrap_or(0) as usize;
        let docs = inner.dbs[&db].collections[&coll]
            .docs
            .values()
            .map(|(_, d)| d);
        let mut rows: Vec<(String, Value)> = if query == queries::LIST_SEMAPHORES {
            docs.filter_map(|d| {
                let name = d.get("semaphore")?.as_str()?;
                let mut holders = live_holders(d, now);
                if !name.starts_with(prefix) || holders.is_empty() {
                    return None;
                }
                holders.sort_by_key(|h| num(h, "fence"));
                let holders: Vec<Value> = holders
                    .iter()
                    .map(|h| json!({ "owner": h["owner"], "fence": num(h, "fence"), "expiresAtMs": h["expiresAtMs"] }))
                    .collect();
                let permits = d.get("permits").cloned().unwrap_or(Value::Null);
                let row = json!({ "name": name, "permits": permits, "holders": holders });
                Some((name.to_owned(), row))
            })
            .collect()
        } else {
            docs.filter_map(|d| {
                let key = d.get("sortKey")?.as_str()?;
                let name = d.get("name")?.as_str()?;
                let waiting = live_queue(d, now).len();
                (key.starts_with(prefix) && waiting > 0)
                    .then(|| (key.to_owned(), json!({ "name": name, "waiting": waiting })))
            })
            .collect()
        };
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        return cursor_result(rows.into_iter().take(limit).map(|(_, r)| r).collect(), 0);
    }
    // Step 1: look up (like the real server, without holding anything).
    let seen = {
        let inner = state.lock().unwrap();
        inner.dbs[&db].collections[&coll].docs.get(&key).cloned()
    };
    if query == queries::INSPECT {
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let result = seen
            .map(|(_, d)| d)
            .filter(|d| owner_of(d).is_some() && num(d, "expiresAtMs") >= now)
            .map(|d| vec![projection(&d)])
            .unwrap_or_default();
        return cursor_result(result, 0);
    }
    if query == queries::INSPECT_SEMAPHORE {
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let result = seen
            .map(|(_, d)| {
                let mut holders = live_holders(&d, now);
                holders.sort_by_key(|h| num(h, "fence"));
                let holders: Vec<Value> = holders
                    .iter()
                    .map(|h| json!({ "owner": h["owner"], "fence": num(h, "fence"), "expiresAtMs": h["expiresAtMs"] }))
                    .collect();
                vec![json!({ "permits": d.get("permits").cloned().unwrap_or(Value::Null), "holders": holders })]
            })
            .unwrap_or_default();
        return cursor_result(result, 0);
    }
    if query == queries::INSPECT_RW {
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let result = seen
            .map(|(_, d)| {
                let mut holders = live_holders(&d, now);
                holders.sort_by_key(|h| num(h, "fence"));
                let holders: Vec<Value> = holders
                    .iter()
                    .map(|h| json!({ "owner": h["owner"], "fence": num(h, "fence"), "expiresAtMs": h["expiresAtMs"], "w": h.get("w") == Some(&json!(true)) }))
                    .collect();
                let waiting = !live_intents(&d, now).is_empty();
                vec![json!({ "holders": holders, "waiting": waiting })]
            })
            .unwrap_or_default();
        return cursor_result(result, 0);
    }
    if query == queries::CLAIM_RW {
        // A refusal that records nothing is only read.
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let plan = rw_plan(
            seen.as_ref().map(|(_, d)| d),
            owner.as_deref().unwrap_or_default(),
            &vars,
            now,
        );
        if !plan.write {
            return cursor_result(vec![plan.row], 0);
        }
    }
    if query == queries::CLAIM_PERMIT {
        // A full semaphore (or one held under another count) is only read.
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        let plan = permit_plan(
            seen.as_ref().map(|(_, d)| d),
            owner.as_deref().unwrap_or_default(),
            &vars,
            now,
        );
        if !plan.write {
            return cursor_result(vec![plan.row], 0);
        }
    }
    if query == queries::CLAIM_FAIR {
        // The query's FILTERs: another ticket first, or a lock held by
        // another live owner, is not written at all.
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        if let Some((_, d)) = &seen {
            let line = live_queue(d, now);
            let first = line
                .first()
                .and_then(|t| t.get("owner"))
                .and_then(Value::as_str);
            let holds = owner_of(d).is_some_and(|o| Some(o) == owner.as_deref())
                && num(d, "expiresAtMs") >= now;
            if first.is_some_and(|f| Some(f) != owner.as_deref()) && !holds {
                return cursor_result(vec![], 0);
            }
        }
    }
    if query == queries::ACQUIRE || query == queries::CLAIM_FAIR {
        // The query's FILTER: a lock held by another live owner is not
        // written at all.
        let inner = state.lock().unwrap();
        let now = now_ms(&inner);
        if let Some((_, d)) = &seen {
            let held_by_other = owner_of(d).is_some_and(|o| Some(o) != owner.as_deref());
            if held_by_other && num(d, "expiresAtMs") >= now {
                return cursor_result(vec![], 0);
            }
        }
    }
    // Writes race with concurrent writers between lookup and write.
    tokio::time::sleep(Duration::from_micros(200)).await;

    // Step 2: write, failing like ArangoDB if the document changed since.
    let mut inner = state.lock().unwrap();
    let now = now_ms(&inner);
    inner.next_rev += 1;
    let rev = inner.next_rev;
    let docs = &mut inner
        .dbs
        .get_mut(&db)
        .unwrap()
        .collections
        .get_mut(&coll)
        .unwrap()
        .docs;
    let current_rev = docs.get(&key).map(|(r, _)| *r);
    if current_rev != seen.as_ref().map(|(r, _)| *r) {
        return if seen.is_none() {
            error(409, 1210, &format!("AQL: unique constraint violated - in index primary of type primary over '_key'; conflicting key: {key} [node #4: UpsertNode] (while executing)"))
        } else {
            error(
                409,
                1200,
                "AQL: conflict, _rev values do not match [node #4: UpdateNode] (while executing)",
            )
        };
    }
    let owner_var = owner.as_deref();
    match query {
        q if q == queries::ENQUEUE => {
            let owner = owner_var.unwrap_or_default();
            let mut d = seen.map(|(_, d)| d).unwrap_or_else(|| {
                let mut d = Map::new();
                d.insert("_key".into(), json!(key));
                d.insert(
                    "name".into(),
                    vars.get("name").cloned().unwrap_or(Value::Null),
                );
                d.insert(
                    "sortKey".into(),
                    vars.get("sortKey").cloned().unwrap_or(Value::Null),
                );
                d
            });
            let mut line = live_queue(&d, now);
            let holds = owner_of(&d) == Some(owner) && num(&d, "expiresAtMs") >= now;
            let place = match line
                .iter()
                .position(|t| t.get("owner").and_then(Value::as_str) == Some(owner))
            {
                _ if holds => 0,
                None if vars
                    .get("maxWaiters")
                    .and_then(Value::as_u64)
                    .is_some_and(|max| line.len() as u64 >= max) =>
                {
                    -1
                }
                Some(place) => {
                    line[place].insert("expiresAtMs".into(), json!(now + ttl));
                    place as i64
                }
                None => {
                    let mut t = Map::new();
                    t.insert("owner".into(), json!(owner));
                    t.insert("expiresAtMs".into(), json!(now + ttl));
                    line.push(t);
                    line.len() as i64 - 1
                }
            };
            d.insert(
                "queue".into(),
                Value::Array(line.into_iter().map(Value::Object).collect()),
            );
            keep_for_tickets(&mut d, now + ttl);
            docs.insert(key, (rev, d));
            cursor_result(vec![json!(place)], 1)
        }
        q if q == queries::EXTEND_TICKET => match seen {
            Some((_, mut d))
                if live_queue(&d, now)
                    .iter()
                    .any(|t| t.get("owner").and_then(Value::as_str) == owner_var) =>
            {
                let line: Vec<Value> = queue_of(&d)
                    .into_iter()
                    .map(|mut t| {
                        if t.get("owner").and_then(Value::as_str) == owner_var {
                            t.insert("expiresAtMs".into(), json!(now + ttl));
                        }
                        Value::Object(t)
                    })
                    .collect();
                d.insert("queue".into(), Value::Array(line));
                keep_for_tickets(&mut d, now + ttl);
                docs.insert(key, (rev, d));
                cursor_result(vec![json!(true)], 1)
            }
            _ => cursor_result(vec![], 0),
        },
        q if q == queries::LEAVE_QUEUE => match seen {
            Some((_, mut d))
                if queue_of(&d)
                    .iter()
                    .any(|t| t.get("owner").and_then(Value::as_str) == owner_var) =>
            {
                let line: Vec<Value> = queue_of(&d)
                    .into_iter()
                    .filter(|t| t.get("owner").and_then(Value::as_str) != owner_var)
                    .map(Value::Object)
                    .collect();
                d.insert("queue".into(), Value::Array(line));
                docs.insert(key, (rev, d));
                cursor_result(vec![json!(true)], 1)
            }
            _ => cursor_result(vec![], 0),
        },
        q if q == queries::ACQUIRE || q == queries::CLAIM_FAIR => {
            let fair = q == queries::CLAIM_FAIR;
            let owner = owner_var.unwrap_or_default();
            let name = vars.get("name").cloned().unwrap_or(Value::Null);
            let sort_key = vars.get("sortKey").cloned().unwrap_or(Value::Null);
            let doc = match seen {
                None => {
                    let mut d = Map::new();
                    d.insert("_key".into(), json!(key));
                    d.insert("name".into(), name);
                    d.insert("sortKey".into(), sort_key);
                    d.insert("owner".into(), json!(owner));
                    d.insert("fence".into(), json!(now));
                    d.insert("expiresAtMs".into(), json!(now + ttl));
                    d.insert("expiresAt".into(), json!((now + ttl) as f64 / 1000.0));
                    if fair {
                        d.insert("queue".into(), json!([]));
                    }
                    d
                }
                Some((_, mut d)) => {
                    let old_owner = owner_of(&d).map(str::to_owned);
                    let old_exp = num(&d, "expiresAtMs");
                    // Strictly past, as the query's `OLD.expiresAtMs < now`.
                    let free =
                        old_owner.is_none() || old_exp < now || old_owner.as_deref() == Some(owner);
                    if free {
                        d.insert("name".into(), name);
                        d.insert("sortKey".into(), sort_key);
                        let keep = old_owner.as_deref() == Some(owner) && old_exp >= now;
                        let fence = if keep {
                            num(&d, "fence")
                        } else {
                            (num(&d, "fence") + 1).max(now)
                        };
                        d.insert("owner".into(), json!(owner));
                        d.insert("fence".into(), json!(fence));
                        d.insert("expiresAtMs".into(), json!(now + ttl));
                        d.insert("expiresAt".into(), json!((now + ttl) as f64 / 1000.0));
                        if fair {
                            let line: Vec<Value> = live_queue(&d, now)
                                .into_iter()
                                .filter(|t| t.get("owner").and_then(Value::as_str) != Some(owner))
                                .map(Value::Object)
                                .collect();
                            d.insert("queue".into(), Value::Array(line));
                        }
                    }
                    d
                }
            };
            let out = projection(&doc);
            docs.insert(key, (rev, doc));
            cursor_result(vec![out], 1)
        }
        q if q == queries::EXTEND => match seen {
            Some((_, mut d)) if owner_of(&d) == owner_var && num(&d, "expiresAtMs") >= now => {
                d.insert("expiresAtMs".into(), json!(now + ttl));
                d.insert("expiresAt".into(), json!((now + ttl) as f64 / 1000.0));
                let out = projection(&d);
                docs.insert(key, (rev, d));
                cursor_result(vec![out], 1)
            }
            _ => cursor_result(vec![], 0),
        },
        q if q == queries::RELEASE || q == queries::FORCE_RELEASE => match seen {
            Some((_, mut d))
                if owner_of(&d).is_some()
                    && (q == queries::FORCE_RELEASE || owner_of(&d) == owner_var) =>
            {
                let live = num(&d, "expiresAtMs") >= now;
                d.remove("owner");
                d.insert("expiresAtMs".into(), json!(now));
                d.insert("expiresAt".into(), json!(now as f64 / 1000.0));
                docs.insert(key, (rev, d));
                let out = if q == queries::RELEASE {
                    json!(true)
                } else {
                    json!(live)
                };
                cursor_result(vec![out], 1)
            }
            _ => cursor_result(vec![], 0),
        },
        q if q == queries::CLAIM_PERMIT => {
            let plan = permit_plan(
                seen.as_ref().map(|(_, d)| d),
                owner_var.unwrap_or_default(),
                &vars,
                now,
            );
            if !plan.write {
                return cursor_result(vec![plan.row], 0);
            }
            let mut d = seen.map(|(_, d)| d).unwrap_or_default();
            d.insert("_key".into(), json!(key));
            d.insert(
                "semaphore".into(),
                vars.get("name").cloned().unwrap_or(Value::Null),
            );
            d.insert(
                "holders".into(),
                Value::Array(plan.holders.into_iter().map(Value::Object).collect()),
            );
            if plan.take {
                d.insert("permits".into(), vars["permits"].clone());
                d.insert("fence".into(), json!(plan.next));
            }
            docs.insert(key, (rev, d));
            cursor_result(vec![plan.row], 1)
        }
        q if q == queries::CLAIM_RW => {
            let plan = rw_plan(
                seen.as_ref().map(|(_, d)| d),
                owner_var.unwrap_or_default(),
                &vars,
                now,
            );
            if !plan.write {
                return cursor_result(vec![plan.row], 0);
            }
            let mut d = seen.map(|(_, d)| d).unwrap_or_default();
            d.insert("_key".into(), json!(key));
            d.insert(
                "rwlock".into(),
                vars.get("name").cloned().unwrap_or(Value::Null),
            );
            d.insert(
                "holders".into(),
                Value::Array(plan.holders.into_iter().map(Value::Object).collect()),
            );
            d.insert(
                "intents".into(),
                Value::Array(plan.intents.into_iter().map(Value::Object).collect()),
            );
            if plan.take {
                d.insert("fence".into(), json!(plan.next));
            }
            docs.insert(key, (rev, d));
            cursor_result(vec![plan.row], 1)
        }
        q if q == queries::RELEASE_RW => match seen {
            Some((_, mut d))
                if holder_list(&d)
                    .iter()
                    .chain(intent_list(&d).iter())
                    .any(|h| h.get("owner").and_then(Value::as_str) == owner_var) =>
            {
                let is_owner =
                    |h: &Map<String, Value>| h.get("owner").and_then(Value::as_str) == owner_var;
                let gone = holder_list(&d).into_iter().find(|h| is_owner(h));
                let withdrawn = intent_list(&d).iter().any(is_owner);
                let holders: Vec<Value> = holder_list(&d)
                    .into_iter()
                    .filter(|h| !is_owner(h))
                    .map(Value::Object)
                    .collect();
                let intents: Vec<Value> = intent_list(&d)
                    .into_iter()
                    .filter(|i| !is_owner(i))
                    .map(Value::Object)
                    .collect();
                d.insert("holders".into(), Value::Array(holders));
                d.insert("intents".into(), Value::Array(intents));
                docs.insert(key, (rev, d));
                let writer = gone
                    .as_ref()
                    .is_some_and(|h| h.get("w") == Some(&json!(true)));
                cursor_result(
                    vec![
                        json!({ "held": gone.is_some(), "writer": writer, "withdrawn": withdrawn }),
                    ],
                    1,
                )
            }
            _ => cursor_result(vec![], 0),
        },
        q if q == queries::EXTEND_PERMIT => match seen {
            Some((_, mut d))
                if live_holders(&d, now)
                    .iter()
                    .any(|h| h.get("owner").and_then(Value::as_str) == owner_var) =>
            {
                let holders: Vec<Value> = holder_list(&d)
                    .into_iter()
                    .map(|mut h| {
                        if h.get("owner").and_then(Value::as_str) == owner_var {
                            h.insert("expiresAtMs".into(), json!(now + ttl));
                        }
                        Value::Object(h)
                    })
                    .collect();
                d.insert("holders".into(), Value::Array(holders));
                docs.insert(key, (rev, d));
                cursor_result(vec![json!(now + ttl)], 1)
            }
            _ => cursor_result(vec![], 0),
        },
        q if q == queries::RELEASE_PERMIT => match seen {
            Some((_, mut d))
                if holder_list(&d)
                    .iter()
                    .any(|h| h.get("owner").and_then(Value::as_str) == owner_var) =>
            {
                let holders: Vec<Value> = holder_list(&d)
                    .into_iter()
                    .filter(|h| h.get("owner").and_then(Value::as_str) != owner_var)
                    .map(Value::Object)
                    .collect();
                d.insert("holders".into(), Value::Array(holders));
                docs.insert(key, (rev, d));
                cursor_result(vec![json!(true)], 1)
            }
            _ => cursor_result(vec![], 0),
        },
        _ => error(400, 1501, "unreachable"),
    }
}

/// Every ticket of a lock document's line.
fn queue_of(doc: &Map<String, Value>) -> Vec<Map<String, Value>> {
    doc.get("queue")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// Tickets live at `now`, in order, as the queries' `live`.
/// ENQUEUE and EXTEND_TICKET: `expiresAt` (seconds, the TTL field) at
/// least the ticket's expiry `until_ms`.
fn keep_for_tickets(doc: &mut Map<String, Value>, until_ms: i64) {
    let until = until_ms as f64 / 1000.0;
    let old = doc
        .get("expiresAt")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MIN);
    doc.insert("expiresAt".into(), json!(old.max(until)));
}

fn live_queue(doc: &Map<String, Value>, now: i64) -> Vec<Map<String, Value>> {
    queue_of(doc)
        .into_iter()
        .filter(|t| {
            t.get("expiresAtMs")
                .and_then(Value::as_i64)
                .is_some_and(|e| e >= now)
        })
        .collect()
}

/// Every holder object of a semaphore document.
fn holder_list(doc: &Map<String, Value>) -> Vec<Map<String, Value>> {
    doc.get("holders")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|h| h.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// Holders live at `now`, as the queries' filter.
fn live_holders(doc: &Map<String, Value>, now: i64) -> Vec<Map<String, Value>> {
    holder_list(doc)
        .into_iter()
        .filter(|h| {
            h.get("owner").is_some_and(Value::is_string)
                && h.get("expiresAtMs").is_some_and(Value::is_number)
                && num(h, "expiresAtMs") >= now
        })
        .collect()
}

/// What CLAIM_PERMIT decides for `doc`.
struct PermitPlan {
    write: bool,
    take: bool,
    next: i64,
    holders: Vec<Map<String, Value>>,
    row: Value,
}

fn permit_plan(
    doc: Option<&Map<String, Value>>,
    owner: &str,
    vars: &Map<String, Value>,
    now: i64,
) -> PermitPlan {
    let permits = vars["permits"].as_i64().unwrap_or(0);
    let ttl = vars["ttl"].as_i64().unwrap_or(0);
    let live = doc.map(|d| live_holders(d, now)).unwrap_or_default();
    let mine = live
        .iter()
        .any(|h| h.get("owner").and_then(Value::as_str) == Some(owner));
    let busy = !live.is_empty();
    let stored = doc
        .and_then(|d| d.get("permits"))
        .cloned()
        .unwrap_or(Value::Null);
    let take =
        !mine && (live.len() as i64) < permits && (!busy || stored.as_i64() == Some(permits));
    let next = (doc.map(|d| num(d, "fence")).unwrap_or(0) + 1).max(now);
    let mut holders = live;
    if mine {
        for h in &mut holders {
            if h.get("owner").and_then(Value::as_str) == Some(owner) {
                h.insert("expiresAtMs".into(), json!(now + ttl));
            }
        }
    } else if take {
        let mut h = Map::new();
        h.insert("owner".into(), json!(owner));
        h.insert("expiresAtMs".into(), json!(now + ttl));
        h.insert("fence".into(), json!(next));
        holders.push(h);
    }
    let held = holders
        .iter()
        .find(|h| h.get("owner").and_then(Value::as_str) == Some(owner));
    let row = json!({
        "held": held.is_some(),
        "fence": held.map(|h| json!(num(h, "fence"))).unwrap_or(Value::Null),
        "expiresAtMs": held.map(|h| h["expiresAtMs"].clone()).unwrap_or(Value::Null),
        "busy": busy,
        "permits": stored,
    });
    PermitPlan {
        write: mine || take,
        take,
        next,
        holders,
        row,
    }
}

/// Every intent object of a read/write lock document.
fn intent_list(doc: &Map<String, Value>) -> Vec<Map<String, Value>> {
    doc.get("intents")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|i| i.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// Intents live at `now`, as CLAIM_RW's `waiting`.
fn live_intents(doc: &Map<String, Value>, now: i64) -> Vec<Map<String, Value>> {
    intent_list(doc)
        .into_iter()
        .filter(|i| {
            i.get("owner").is_some_and(Value::is_string)
                && i.get("untilMs").is_some_and(Value::is_number)
                && num(i, "untilMs") >= now
        })
        .collect()
}

/// What CLAIM_RW decides for `doc`.
struct RwPlan {
    write: bool,
    take: bool,
    next: i64,
    holders: Vec<Map<String, Value>>,
    intents: Vec<Map<String, Value>>,
    row: Value,
}

fn rw_plan(
    doc: Option<&Map<String, Value>>,
    owner: &str,
    vars: &Map<String, Value>,
    now: i64,
) -> RwPlan {
    let flag = |name: &str| vars.get(name).and_then(Value::as_bool).unwrap_or(false);
    let (write, first, intent) = (flag("write"), flag("first"), flag("intent"));
    let ttl = vars["ttl"].as_i64().unwrap_or(0);
    let live = doc.map(|d| live_holders(d, now)).unwrap_or_default();
    let waiting = doc.map(|d| live_intents(d, now)).unwrap_or_default();
    let is_owner = |h: &Map<String, Value>| h.get("owner").and_then(Value::as_str) == Some(owner);
    let mine = live.iter().any(is_owner);
    let writer = live.iter().any(|h| h.get("w") == Some(&json!(true)));
    let take = !mine
        && if write {
            live.is_empty()
        } else {
            !writer && (!first || waiting.is_empty())
        };
    let record =
        write && intent && !mine && !take && (waiting.is_empty() || waiting.iter().any(is_owner));
    let next = (doc.map(|d| num(d, "fence")).unwrap_or(0) + 1).max(now);
    let mut holders = live;
    if mine {
        for h in &mut holders {
            if is_owner(h) {
                h.insert("expiresAtMs".into(), json!(now + ttl));
            }
        }
    } else if take {
        let mut h = Map::new();
        h.insert("owner".into(), json!(owner));
        h.insert("expiresAtMs".into(), json!(now + ttl));
        h.insert("fence".into(), json!(next));
        h.insert("w".into(), json!(write));
        holders.push(h);
    }
    let intents = if take {
        waiting.into_iter().filter(|i| !is_owner(i)).collect()
    } else if record {
        let mut i = Map::new();
        i.insert("owner".into(), json!(owner));
        i.insert("untilMs".into(), json!(now + ttl));
        vec![i]
    } else {
        waiting
    };
    let held = holders.iter().find(|h| is_owner(h));
    let row = json!({
        "held": held.is_some(),
        "fence": held.map(|h| json!(num(h, "fence"))).unwrap_or(Value::Null),
        "expiresAtMs": held.map(|h| h["expiresAtMs"].clone()).unwrap_or(Value::Null),
    });
    RwPlan {
        write: mine || take || record,
        take,
        next,
        holders,
        intents,
        row,
    }
}

/// An application's fenced write, built with `FencedAql` as its docs show:
/// the one query of an application's own the fake answers.
pub(crate) fn fenced_write_query() -> String {
    let fence = shylock_arango::FencedAql::new("a", "fence");
    format!(
        "FOR a IN @@coll FILTER a._key == @key {} UPDATE a WITH {{ balance: @balance, {} }} IN @@coll RETURN true",
        fence.filter(),
        fence.assignment()
    )
}

/// What ArangoDB does with [`fenced_write_query`]: `null <= n` holds in
/// AQL's type order, numbers compare by value.
fn fenced_write(inner: &mut Inner, db: &str, vars: &Map<String, Value>) -> Response {
    let coll = vars["@coll"].as_str().unwrap_or_default();
    let key = vars["key"].as_str().unwrap_or_default();
    let fence = vars["fence"].as_i64().unwrap_or(i64::MIN);
    inner.next_rev += 1;
    let rev = inner.next_rev;
    let Some((doc_rev, doc)) = inner
        .dbs
        .get_mut(db)
        .and_then(|d| d.collections.get_mut(coll))
        .and_then(|c| c.docs.get_mut(key))
    else {
        return cursor_result(vec![], 0);
    };
    let passes = match doc.get("fence") {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n <= fence),
        Some(_) => false,
    };
    if !passes {
        return cursor_result(vec![], 0);
    }
    doc.insert("balance".into(), vars["balance"].clone());
    doc.insert("fence".into(), json!(fence));
    *doc_rev = rev;
    cursor_result(vec![json!(true)], 1)
}
