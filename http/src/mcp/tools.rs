//! The coordinator's tools: the Python "claude-session-coordinator" surface — `sign_on`,
//! `sign_off`, `store_data`, `retrieve_data`, `delete_data`, `list_keys`, `list_scopes`,
//! `delete_scope` — plus `key_history`, compare-and-set (`expected_version`), time travel
//! (`as_of`), time to live (`ttl_seconds`) and `wait_for_change`, each calling
//! `ingest::coordinator` on a blocking thread (a wait, `ingest::kv_watch`, holds none).

use cclog_ingest::coordinator::{AsOf, ChangeReason, Instances, KvStore, Stored, Ttl, Version};
use cclog_ingest::kv_watch::WaitTimeout;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::Extensions;
use rmcp::{schemars, tool, tool_router, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::sync::PoisonError;

use super::{glob_escape, uuid_like, Caller, CoordinatorMcp};

/// How long `wait_for_change` waits when the call does not say.
const DEFAULT_WAIT_SECONDS: f64 = 60.0;

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
    /// Seconds the value lives (0.001 to 31536000, i.e. 365 days); after that the key reads as
    /// absent, is not listed, and `expected_version` 0 may claim it again. Absent: until changed.
    pub ttl_seconds: Option<f64>,
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
pub struct WaitArgs {
    pub scope: String,
    pub key: String,
    /// Answer once the key is past this version: the version you last read (0: until it is
    /// first written). Absent: wait for the next change from now.
    pub after_version: Option<u64>,
    /// How long to wait: 0 to 300 seconds (default 60). At the timeout the answer is
    /// `changed: false` with the current version; call again with it to keep waiting.
    pub timeout_seconds: Option<f64>,
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
    /// For a value written with a TTL: when it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// In a history: the value expired before the key was next written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

impl From<Version> for ValueVersion {
    fn from(version: Version) -> ValueVersion {
        ValueVersion {
            version: version.version,
            value: version.value,
            written_by: format!("{}@{}:{}", version.writer.instance, version.writer.machine, version.writer.project),
            at: version.at,
            log_position: version.seq,
            expires_at: version.expires_at,
            expired: version.expired,
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
    /// For a value stored with `ttl_seconds`: when it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// On a conflict: the current value.
    pub current: Option<ValueVersion>,
}

/// A tool's answer whose text content keeps the result's fields in their declared order
/// (`Json` sorts them): `retrieve_data`'s text starts with the value. The structured content
/// is the same object.
pub struct InFieldOrder<T>(pub T);

impl<T: Serialize> rmcp::handler::server::tool::IntoCallToolResult for InFieldOrder<T> {
    fn into_call_tool_result(self) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let failed = |error: serde_json::Error| rmcp::ErrorData::internal_error(error.to_string(), None);
        let text = serde_json::to_string(&self.0).map_err(failed)?;
        let mut result = rmcp::model::CallToolResult::structured(serde_json::to_value(&self.0).map_err(failed)?);
        result.content = vec![rmcp::model::ContentBlock::text(text)];
        Ok(result.into())
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RetrieveResult {
    // First, so that a model reading the text content gets the value at once, as the Python
    // coordinator's bare answer gives it (a doc comment would become the schema's description).
    pub value: Option<Value>,
    pub scope: String,
    pub key: String,
    pub found: bool,
    pub version: Option<u64>,
    pub written_by: Option<String>,
    pub at: Option<String>,
    pub log_position: Option<u64>,
}

/// What `wait_for_change` answers.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WaitResult {
    // First, as in retrieve_data: the value the key holds now (null when deleted or expired).
    pub value: Option<Value>,
    /// False when the timeout came first.
    pub changed: bool,
    /// Why it changed: `written`, `deleted` or `expired`; null at a timeout.
    pub reason: Option<String>,
    pub scope: String,
    pub key: String,
    /// The key's version now (0: never written); pass it as after_version to wait for the next change.
    pub version: u64,
    /// Who wrote (or deleted) that version, when, and at which log position.
    pub written_by: Option<String>,
    pub at: Option<String>,
    pub log_position: Option<u64>,
    /// For a value with a TTL: when it expires (or expired).
    pub expires_at: Option<String>,
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

#[tool_router(vis = "pub(super)")]
impl CoordinatorMcp {
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
        let ttl = args.ttl_seconds.map(Ttl::seconds).transpose().map_err(|error| error.to_string())?;
        let (full, key, value, expected) = (scope.clone(), args.key.clone(), args.value, args.expected_version);
        let stored = self
            .blocking(&caller.identity, Some(caller.instance.clone()), move |log| {
                KvStore::new(log).store(&full, &key, &value, expected, ttl, &writer)
            })
            .await?;
        Ok(Json(match stored {
            Stored::Written { version, seq, expires_at } => StoreResult {
                stored: true,
                scope: args.scope,
                key: args.key,
                version,
                log_position: Some(seq),
                expires_at,
                current: None,
            },
            Stored::Conflict { current } => StoreResult {
                stored: false,
                scope: args.scope,
                key: args.key,
                version: current.as_ref().map_or(0, |current| current.version),
                log_position: None,
                expires_at: None,
                current: current.map(ValueVersion::from),
            },
        }))
    }

    #[tool(
        description = "Read the value of scope and key, with its version, writer and time. With as_of (a log \
        position or an RFC 3339 time), read it as it was then.",
        annotations(read_only_hint = true),
        output_schema = rmcp::handler::server::common::schema_for_output::<RetrieveResult>()
    )]
    async fn retrieve_data(
        &self,
        Parameters(args): Parameters<RetrieveArgs>,
        extensions: Extensions,
    ) -> Result<InFieldOrder<RetrieveResult>, String> {
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
        Ok(InFieldOrder(RetrieveResult {
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
        description = "Wait until another session changes a key, instead of polling: answers as soon as scope \
        and key have a version above after_version (a new value, a deletion), or the value at after_version \
        expires, with the new value; or with changed: false after timeout_seconds (at most 300; call again to wait \
        longer). To hand work over: the producer store_data's its result, the consumer waits for it here \
        (after_version 0 waits for the key's first write).",
        annotations(read_only_hint = true),
        output_schema = rmcp::handler::server::common::schema_for_output::<WaitResult>()
    )]
    async fn wait_for_change(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        extensions: Extensions,
    ) -> Result<InFieldOrder<WaitResult>, String> {
        let caller = self.caller(&extensions, args.session_id)?;
        let full = caller.scope(&args.scope)?;
        let timeout = WaitTimeout::seconds(args.timeout_seconds.unwrap_or(DEFAULT_WAIT_SECONDS))
            .map_err(|error| error.to_string())?;
        // The call renews the caller's lease, as every tool call does.
        self.blocking(&caller.identity, Some(caller.instance.clone()), |_| Ok(())).await?;
        let waited = self
            .writes
            .wait_for_change(&full, &args.key, args.after_version, timeout)
            .await
            .map_err(|error| error.to_string())?;
        let current = waited.current.map(ValueVersion::from);
        Ok(InFieldOrder(WaitResult {
            value: current
                .as_ref()
                .filter(|_| waited.reason.is_none_or(|reason| reason == ChangeReason::Written))
                .and_then(|current| current.value.clone()),
            changed: waited.reason.is_some(),
            reason: waited.reason.map(|reason| reason.as_str().to_string()),
            scope: args.scope,
            key: args.key,
            version: waited.version,
            written_by: current.as_ref().map(|current| current.written_by.clone()),
            at: current.as_ref().map(|current| current.at.clone()),
            log_position: current.as_ref().map(|current| current.log_position),
            expires_at: current.and_then(|current| current.expires_at),
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
