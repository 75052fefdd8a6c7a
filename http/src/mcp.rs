//! The session coordinator over MCP (rmcp, pinned; this module is the only one that uses
//! it): the Python "claude-session-coordinator" tool surface — `sign_on`, `sign_off`,
//! `store_data`, `retrieve_data`, `delete_data`, `list_keys`, `list_scopes`,
//! `delete_scope` — plus `key_history`, compare-and-set and time travel, on the log.
//!
//! Scopes are prefixed with `machine:project:` as the Python server does, and `list_scopes`
//! strips the prefix. Tools other than `sign_on` work on the connection's signed-on instance
//! or on an explicit `session_id`: Streamable HTTP clients of the current MCP revision
//! (2026-07-28) carry no connection state, so over HTTP every call names its instance.
//!
//! Resources: `session://context` and `session://state/{session_id}`; prompts `startup` and
//! `sign-off`. Served as Streamable HTTP at `/mcp` by `cclog serve`; `cclog mcp` relays
//! stdio to it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use cclog_engine::Log;
use cclog_ingest::coordinator::{AsOf, Instances, KvStore, Stored, Version};
use cclog_projections::coordinator::Writer;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Extensions, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    prompt, prompt_handler, prompt_router, schemars, tool, tool_handler, tool_router, ErrorData, Json, RoleServer,
    ServerHandler,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who this coordinator is: the machine and project scopes are prefixed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub machine: String,
    pub project: String,
    /// How long a silent holder keeps its instance.
    #[serde(skip)]
    pub lease: Duration,
}

impl Identity {
    /// This machine (its hostname) and the project of `dir` (its git origin's `owner/repo`,
    /// else its name), with the default lease of 10 minutes.
    pub fn detect(dir: &std::path::Path) -> Identity {
        Identity {
            machine: cclog_ingest::coordinator::detect_machine(),
            project: cclog_ingest::coordinator::detect_project(dir),
            lease: DEFAULT_LEASE,
        }
    }
}

/// How long a silent holder keeps its instance by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);

/// The MCP service of one connection.
#[derive(Clone)]
pub struct CoordinatorMcp {
    log: Arc<Log>,
    identity: Arc<Identity>,
    /// The instance this connection signed on as (stdio keeps it; HTTP has none).
    signed_on: Arc<Mutex<Option<String>>>,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

/// `session_id` alone.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SessionArgs {
    /// The instance to act as (e.g. `claude_2`); defaults to the one this connection signed on as.
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StoreArgs {
    /// A name for a group of keys, e.g. `progress` or `task-42` (prefixed with machine:project: for you).
    pub scope: String,
    pub key: String,
    /// Any JSON value, up to 1 MiB.
    pub value: Value,
    /// Only store if the key is at this version (0: only if it does not exist); on a
    /// mismatch nothing is stored and the current version and value come back.
    pub expected_version: Option<u64>,
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RetrieveArgs {
    pub scope: String,
    pub key: String,
    /// Read the value as it was: a log position (a number) or a time (RFC 3339).
    pub as_of: Option<Value>,
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct KeyArgs {
    pub scope: String,
    pub key: String,
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScopeArgs {
    pub scope: String,
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PatternArgs {
    /// A glob over scope names (`*`, `?`, `[...]`); all scopes when absent.
    pub pattern: Option<String>,
    pub session_id: Option<String>,
}

/// What `sign_on` answers.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SignOnResult {
    pub machine: String,
    pub project: String,
    pub session_id: String,
    /// Prefix of every scope this instance writes: `machine:project:`.
    pub full_scope_prefix: String,
    /// The other instances signed on, and who holds each.
    pub others: Vec<OtherInstance>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OtherInstance {
    pub session_id: String,
    pub holder: String,
}

/// A value with where it came from.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ValueVersion {
    pub version: u64,
    /// `null` for a deletion (in a history).
    pub value: Option<Value>,
    /// The instance, machine and project that wrote it.
    pub written_by: String,
    pub at: String,
    /// Its position in the log.
    pub log_position: u64,
}

impl From<Version> for ValueVersion {
    fn from(version: Version) -> ValueVersion {
        ValueVersion {
            version: version.version,
            value: version.value,
            written_by: format!("{}@{}:{}", version.writer.instance, version.writer.machine, version.writer.project),
            at: version.at,
            log_position: version.seq,
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StoreResult {
    /// True when stored; false when `expected_version` did not match.
    pub stored: bool,
    pub scope: String,
    pub key: String,
    /// The key's version now (the new one, or the current one on a conflict).
    pub version: u64,
    pub log_position: Option<u64>,
    /// On a conflict: the current value.
    pub current: Option<ValueVersion>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RetrieveResult {
    pub scope: String,
    pub key: String,
    pub found: bool,
    pub value: Option<Value>,
    pub version: Option<u64>,
    pub written_by: Option<String>,
    pub at: Option<String>,
    pub log_position: Option<u64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeleteResult {
    pub deleted: bool,
    pub scope: String,
    pub key: Option<String>,
    /// For a scope: how many keys it held.
    pub keys_deleted: Option<u64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NamesResult {
    pub names: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HistoryResult {
    pub scope: String,
    pub key: String,
    /// Every version, oldest first.
    pub versions: Vec<ValueVersion>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SignOffResult {
    pub session_id: String,
    pub released: bool,
}

#[tool_router]
impl CoordinatorMcp {
    pub fn new(log: Arc<Log>, identity: Arc<Identity>) -> CoordinatorMcp {
        CoordinatorMcp {
            log,
            identity,
            signed_on: Arc::default(),
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    /// Who is calling: their identity, and the instance they act as.
    fn caller(&self, extensions: &Extensions, session_id: Option<String>) -> Result<Caller, String> {
        Ok(Caller { identity: self.identity(extensions)?, instance: self.instance(session_id)? })
    }

    /// The instance a call acts as: its `session_id`, else this connection's.
    fn instance(&self, session_id: Option<String>) -> Result<String, String> {
        let instance =
            session_id.or_else(|| self.signed_on.lock().unwrap_or_else(PoisonError::into_inner).clone()).ok_or_else(
                || "not signed on: call sign_on first (it returns your session_id), or pass session_id".to_string(),
            )?;
        cclog_ingest::coordinator::check_name("session_id", &instance).map_err(|error| error.to_string())?;
        Ok(instance)
    }

    /// Who the caller is: the machine, project and lease a relaying `cclog mcp` has from
    /// its configuration (`X-Cclog-Machine`, `X-Cclog-Project`, `X-Cclog-Lease-Seconds`),
    /// else the server's own.
    fn identity(&self, extensions: &Extensions) -> Result<Identity, String> {
        let mut identity = (*self.identity).clone();
        if let Some(parts) = extensions.get::<axum::http::request::Parts>() {
            for (header, field) in [(MACHINE_HEADER, &mut identity.machine), (PROJECT_HEADER, &mut identity.project)] {
                if let Some(value) = parts.headers.get(header) {
                    let value = value.to_str().map_err(|_| format!("{header} is not text"))?;
                    cclog_ingest::coordinator::check_name(header, value).map_err(|error| error.to_string())?;
                    *field = value.to_string();
                }
            }
            if let Some(value) = parts.headers.get(LEASE_HEADER) {
                let seconds = value
                    .to_str()
                    .ok()
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .filter(|seconds| (1..=MAX_LEASE_SECONDS).contains(seconds))
                    .ok_or_else(|| {
                        format!("{LEASE_HEADER} must be a whole number of seconds, 1 to {MAX_LEASE_SECONDS}")
                    })?;
                identity.lease = Duration::from_secs(seconds);
            }
        }
        Ok(identity)
    }

    /// Runs `work` on a blocking thread (the log's writes wait for an fsync), renewing the
    /// instance's lease.
    async fn blocking<T: Send + 'static>(
        &self,
        identity: &Identity,
        instance: Option<String>,
        work: impl FnOnce(&Log) -> cclog_ingest::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let (log, identity) = (Arc::clone(&self.log), identity.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(instance) = &instance {
                Instances::new(&log, &identity.machine, &identity.project, identity.lease).touch(instance);
            }
            work(&log)
        })
        .await
        .map_err(|error| format!("the coordinator failed: {error}"))?
        .map_err(|error| error.to_string())
    }

    #[tool(description = "Claim a coordinator instance for this machine and project: the first free of claude_1, \
        claude_2, … or the session_id you ask for. Call it first, then pass the returned session_id to the other \
        tools (over HTTP every call must name it). Returns machine, project, session_id, the scope prefix and who \
        else is signed on.")]
    async fn sign_on(
        &self,
        Parameters(args): Parameters<SessionArgs>,
        extensions: Extensions,
    ) -> Result<Json<SignOnResult>, String> {
        let identity = self.identity(&extensions)?;
        let identity_for_work = identity.clone();
        let holder = format!("mcp {}", uuid_like());
        let signed = self
            .blocking(&identity, None, move |log| {
                Instances::new(log, &identity_for_work.machine, &identity_for_work.project, identity_for_work.lease)
                    .sign_on(args.session_id.as_deref(), &holder)
            })
            .await?;
        *self.signed_on.lock().unwrap_or_else(PoisonError::into_inner) = Some(signed.instance.clone());
        Ok(Json(SignOnResult {
            machine: identity.machine.clone(),
            project: identity.project.clone(),
            session_id: signed.instance,
            full_scope_prefix: identity.prefix(),
            others: signed
                .others
                .into_iter()
                .map(|(session_id, holder)| OtherInstance { session_id, holder })
                .collect(),
        }))
    }

    #[tool(
        description = "Release your instance so that another session can claim it. Your stored data stays.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn sign_off(
        &self,
        Parameters(args): Parameters<SessionArgs>,
        extensions: Extensions,
    ) -> Result<Json<SignOffResult>, String> {
        let Caller { identity, instance } = self.caller(&extensions, args.session_id)?;
        let identity_for_work = identity.clone();
        let target = instance.clone();
        let released = self
            .blocking(&identity, None, move |log| {
                Instances::new(log, &identity_for_work.machine, &identity_for_work.project, identity_for_work.lease)
                    .sign_off(&target)
            })
            .await?;
        let mut signed_on = self.signed_on.lock().unwrap_or_else(PoisonError::into_inner);
        if signed_on.as_deref() == Some(instance.as_str()) {
            *signed_on = None;
        }
        Ok(Json(SignOffResult { session_id: instance, released }))
    }

    #[tool(
        description = "Store a JSON value under scope and key (the scope is prefixed with machine:project: \
        for you). Every write is kept: older values stay readable with key_history and retrieve_data's as_of. \
        With expected_version, stores only if the key is still at that version (0: must not exist) — use it to \
        update shared values safely; on a conflict nothing is stored and the current value comes back.",
        annotations(destructive_hint = false)
    )]
    async fn store_data(
        &self,
        Parameters(args): Parameters<StoreArgs>,
        extensions: Extensions,
    ) -> Result<Json<StoreResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let scope = caller.scope(&args.scope)?;
        let writer = caller.writer();
        let (full, key, value, expected) = (scope.clone(), args.key.clone(), args.value, args.expected_version);
        let stored = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                KvStore::new(log).store(&full, &key, &value, expected, &writer)
            })
            .await?;
        Ok(Json(match stored {
            Stored::Written { version, seq } => StoreResult {
                stored: true,
                scope: args.scope,
                key: args.key,
                version,
                log_position: Some(seq),
                current: None,
            },
            Stored::Conflict { current } => StoreResult {
                stored: false,
                scope: args.scope,
                key: args.key,
                version: current.as_ref().map_or(0, |current| current.version),
                log_position: None,
                current: current.map(ValueVersion::from),
            },
        }))
    }

    #[tool(
        description = "Read the value of scope and key, with its version, writer and time. With as_of (a log \
        position or an RFC 3339 time), read it as it was then.",
        annotations(read_only_hint = true)
    )]
    async fn retrieve_data(
        &self,
        Parameters(args): Parameters<RetrieveArgs>,
        extensions: Extensions,
    ) -> Result<Json<RetrieveResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let full = caller.scope(&args.scope)?;
        let as_of = match &args.as_of {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => {
                Some(AsOf::Seq(number.as_u64().ok_or("as_of must be a log position (0 or more) or a time")?))
            }
            Some(Value::String(text)) => Some(AsOf::parse(text).map_err(|error| error.to_string())?),
            Some(_) => return Err("as_of must be a log position (a number) or a time (RFC 3339 text)".into()),
        };
        let key = args.key.clone();
        let found = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                KvStore::new(log).retrieve(&full, &key, as_of)
            })
            .await?;
        let found = found.map(ValueVersion::from);
        Ok(Json(RetrieveResult {
            scope: args.scope,
            key: args.key,
            found: found.is_some(),
            version: found.as_ref().map(|found| found.version),
            written_by: found.as_ref().map(|found| found.written_by.clone()),
            at: found.as_ref().map(|found| found.at.clone()),
            log_position: found.as_ref().map(|found| found.log_position),
            value: found.and_then(|found| found.value),
        }))
    }

    #[tool(
        description = "Delete a key (its history stays readable with key_history).",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn delete_data(
        &self,
        Parameters(args): Parameters<KeyArgs>,
        extensions: Extensions,
    ) -> Result<Json<DeleteResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let full = caller.scope(&args.scope)?;
        let writer = caller.writer();
        let key = args.key.clone();
        let deleted = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                KvStore::new(log).delete(&full, &key, &writer)
            })
            .await?;
        Ok(Json(DeleteResult {
            deleted: deleted.is_some(),
            scope: args.scope,
            key: Some(args.key),
            keys_deleted: None,
        }))
    }

    #[tool(description = "List the keys stored in a scope.", annotations(read_only_hint = true))]
    async fn list_keys(
        &self,
        Parameters(args): Parameters<ScopeArgs>,
        extensions: Extensions,
    ) -> Result<Json<NamesResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let full = caller.scope(&args.scope)?;
        let names = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| KvStore::new(log).keys(&full))
            .await?;
        Ok(Json(NamesResult { names }))
    }

    #[tool(
        description = "List the scopes of this machine and project that hold keys (without the machine:project: \
        prefix), optionally only those matching a glob such as task-*.",
        annotations(read_only_hint = true)
    )]
    async fn list_scopes(
        &self,
        Parameters(args): Parameters<PatternArgs>,
        extensions: Extensions,
    ) -> Result<Json<NamesResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let prefix = caller.identity.prefix();
        if let Some(pattern) = &args.pattern {
            cclog_ingest::coordinator::scope_pattern(pattern).map_err(|error| error.to_string())?;
        }
        let pattern = args.pattern.map(|pattern| format!("{}{pattern}", glob_escape(&prefix)));
        let names = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                let all = KvStore::new(log)
                    .scopes(Some(pattern.as_deref().unwrap_or(&format!("{}*", glob_escape(&prefix)))))?;
                Ok(all.into_iter().filter_map(|scope| scope.strip_prefix(&prefix).map(str::to_string)).collect())
            })
            .await?;
        Ok(Json(NamesResult { names }))
    }

    #[tool(
        description = "Delete every key of a scope (their history stays readable with key_history).",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn delete_scope(
        &self,
        Parameters(args): Parameters<ScopeArgs>,
        extensions: Extensions,
    ) -> Result<Json<DeleteResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let full = caller.scope(&args.scope)?;
        let writer = caller.writer();
        let count = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                KvStore::new(log).delete_scope(&full, &writer)
            })
            .await?;
        Ok(Json(DeleteResult { deleted: count > 0, scope: args.scope, key: None, keys_deleted: Some(count as u64) }))
    }

    #[tool(
        description = "Every version of a key, oldest first: each value (or deletion), who wrote it, when, and \
        at which log position.",
        annotations(read_only_hint = true)
    )]
    async fn key_history(
        &self,
        Parameters(args): Parameters<KeyArgs>,
        extensions: Extensions,
    ) -> Result<Json<HistoryResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let full = caller.scope(&args.scope)?;
        let key = args.key.clone();
        let versions = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                KvStore::new(log).history(&full, &key)
            })
            .await?;
        Ok(Json(HistoryResult {
            scope: args.scope,
            key: args.key,
            versions: versions.into_iter().map(ValueVersion::from).collect(),
        }))
    }
}

/// How sessions are meant to use the coordinator; the `session://context` resource and the
/// prompts repeat it.
const WORKFLOW: &str = "1. sign_on to claim an instance; keep its session_id. \
2. Read session://context to see who else is signed on, and list_scopes to see what is stored. \
3. Read your previous state: retrieve_data from the scope named by your session_id (or read session://state/<session_id>). \
4. As you work, store_data your progress under the scope named by your session_id, and shared facts under scopes all sessions read; \
use expected_version when several sessions update one key. \
5. Before you stop, store a summary of where you are, then sign_off. Nothing is ever lost: key_history shows every value.";

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for CoordinatorMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().enable_prompts().build())
            .with_instructions(format!(
                "A shared, versioned key-value store for Claude Code sessions on this machine and project. {WORKFLOW}"
            ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(CONTEXT_URI, "context")
            .with_title("Coordinator context")
            .with_description(
                "This machine and project, the instances signed on and their holders, the scopes in use, and the workflow",
            )
            .with_mime_type("application/json")]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![ResourceTemplate::new(STATE_TEMPLATE, "state")
            .with_title("An instance's state")
            .with_description("Every key and value of the scope named by an instance's session_id (e.g. claude_1)")
            .with_mime_type("application/json")]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let identity = self.identity(&context.extensions).map_err(|error| ErrorData::invalid_params(error, None))?;
        let uri = request.uri.clone();
        let body = if uri == CONTEXT_URI {
            self.context_json(&identity).await
        } else if let Some(instance) = uri.strip_prefix("session://state/") {
            self.state_json(&identity, instance).await
        } else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {uri}: read {CONTEXT_URI} or session://state/<session_id>"),
                None,
            ));
        }
        .map_err(|error| ErrorData::invalid_params(error, None))?;
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type("application/json")]).into())
    }
}

const CONTEXT_URI: &str = "session://context";
const STATE_TEMPLATE: &str = "session://state/{session_id}";

impl CoordinatorMcp {
    /// `session://context`.
    async fn context_json(&self, identity: &Identity) -> Result<Value, String> {
        let for_work = identity.clone();
        let (signed_on, scopes) = self
            .blocking(identity, None, move |log| {
                let held = Instances::new(log, &for_work.machine, &for_work.project, for_work.lease).held()?;
                let prefix = for_work.prefix();
                let store = KvStore::new(log);
                let mut scopes = Vec::new();
                for scope in store.scopes(Some(&format!("{}*", glob_escape(&prefix))))? {
                    let keys = store.keys(&scope)?.len();
                    scopes.push(serde_json::json!({"scope": scope[prefix.len()..], "keys": keys}));
                }
                // What each holder is working on: the keys of the scope named by its instance.
                let mut signed_on = Vec::new();
                for (instance, claim) in held {
                    let working_on = scope_values(&store, &format!("{prefix}{instance}"))?;
                    let since = UNIX_EPOCH + Duration::from_micros(claim.since_us);
                    signed_on.push(serde_json::json!({
                        "session_id": instance,
                        "holder": claim.holder,
                        "since": humantime::format_rfc3339_micros(since).to_string(),
                        "working_on": working_on,
                    }));
                }
                Ok((signed_on, scopes))
            })
            .await?;
        Ok(serde_json::json!({
            "machine": identity.machine,
            "project": identity.project,
            "full_scope_prefix": identity.prefix(),
            "signed_on": signed_on,
            "scopes": scopes,
            "workflow": WORKFLOW,
        }))
    }

    /// `session://state/{session_id}`: the instance's own scope.
    async fn state_json(&self, identity: &Identity, instance: &str) -> Result<Value, String> {
        let full = full_scope(identity, instance)?;
        let values = self.blocking(identity, None, move |log| scope_values(&KvStore::new(log), &full)).await?;
        Ok(serde_json::json!({"session_id": instance, "scope": instance, "values": values}))
    }
}

/// Every live key of `scope` with its current value.
fn scope_values(store: &KvStore<'_>, scope: &str) -> cclog_ingest::Result<serde_json::Map<String, Value>> {
    let mut values = serde_json::Map::new();
    for key in store.keys(scope)? {
        if let Some(version) = store.retrieve(scope, &key, None)? {
            values.insert(key, version.value.unwrap_or(Value::Null));
        }
    }
    Ok(values)
}

/// Arguments of the `startup` prompt.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StartupArgs {
    /// The instance to resume as (e.g. `claude_2`); a free one when absent.
    pub session_id: Option<String>,
}

#[prompt_router]
impl CoordinatorMcp {
    /// Walks the model through claiming an instance and picking up where it left off.
    #[prompt(
        name = "startup",
        description = "Start a session with the coordinator: claim an instance, see who else \
        is working, read your previous state, and keep storing progress."
    )]
    async fn startup(&self, Parameters(args): Parameters<StartupArgs>) -> Vec<PromptMessage> {
        let claim = match args.session_id {
            Some(instance) => format!("Call sign_on with session_id \"{instance}\"."),
            None => "Call sign_on (no arguments) and note the session_id it returns.".to_string(),
        };
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "You share a coordinator with other Claude Code sessions on this machine and project. {claim} \
                 Then read the session://context resource to see who else is signed on and which scopes exist, \
                 and retrieve your previous state from the scope named by your session_id (session://state/<session_id>). \
                 While you work, store_data your progress there after each step. The workflow: {WORKFLOW}"
            ),
        )]
    }

    /// Walks the model through leaving its state behind and releasing its instance.
    #[prompt(
        name = "sign-off",
        description = "End a session: store a summary of where you are, then release your \
        instance."
    )]
    async fn sign_off_prompt(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            "Before you stop: store_data a short summary of what you did, what is left and anything the next \
             session must know, under the scope named by your session_id (key \"summary\"). Then call sign_off. \
             Your data stays; the next session that signs on as your instance will find it.",
        )]
    }
}

/// The header a relaying `cclog mcp` names its machine with.
pub const MACHINE_HEADER: &str = "x-cclog-machine";
/// The header a relaying `cclog mcp` names its project with.
pub const PROJECT_HEADER: &str = "x-cclog-project";
/// The header a relaying `cclog mcp` gives its lease with: how long its instance stays its
/// own after each call.
pub const LEASE_HEADER: &str = "x-cclog-lease-seconds";
/// The longest lease a caller may ask for: 30 days.
pub const MAX_LEASE_SECONDS: u64 = 30 * 24 * 3600;

impl Identity {
    /// `machine:project:`, the prefix of every scope.
    pub fn prefix(&self) -> String {
        format!("{}:{}:", self.machine, self.project)
    }
}

/// A tool call's caller: who they are and which instance they act as.
struct Caller {
    identity: Identity,
    instance: String,
}

impl Caller {
    /// `scope` with the caller's `machine:project:` prefix.
    fn scope(&self, scope: &str) -> Result<String, String> {
        full_scope(&self.identity, scope)
    }

    fn writer(&self) -> Writer {
        Writer {
            instance: self.instance.clone(),
            machine: self.identity.machine.clone(),
            project: self.identity.project.clone(),
        }
    }
}

fn full_scope(identity: &Identity, scope: &str) -> Result<String, String> {
    cclog_ingest::coordinator::check_name("scope", scope).map_err(|error| error.to_string())?;
    Ok(format!("{}{scope}", identity.prefix()))
}

/// Escapes glob metacharacters in a literal prefix.
fn glob_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' | '?' | '[' | ']' => format!("[{c}]"),
            other => other.to_string(),
        })
        .collect()
}

/// A short random id for a holder.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// The Streamable HTTP service for `/mcp`: a fresh handler per connection (stateless
/// clients get one per request).
pub fn http_service(
    log: Arc<Log>,
    identity: Arc<Identity>,
    cancel: tokio_util::sync::CancellationToken,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    CoordinatorMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    let mut config = rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default();
    config.cancellation_token = cancel;
    rmcp::transport::streamable_http_server::StreamableHttpService::new(
        move || Ok(CoordinatorMcp::new(Arc::clone(&log), Arc::clone(&identity))),
        Default::default(),
        config,
    )
}
