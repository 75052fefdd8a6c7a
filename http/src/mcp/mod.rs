//! The session coordinator over MCP (rmcp, pinned; this module is the only one that uses
//! it): the Python "claude-session-coordinator" tool surface — `sign_on`, `sign_off`,
//! `store_data`, `retrieve_data`, `delete_data`, `list_keys`, `list_scopes`,
//! `delete_scope` — plus `key_history`, compare-and-set, time travel, TTLs and
//! `wait_for_change`, on the log.
//!
//! Scopes are prefixed with `machine:project:` as the Python server does, and `list_scopes`
//! strips the prefix. Tools other than `sign_on` work on the connection's signed-on instance
//! or on an explicit `session_id`: Streamable HTTP clients of the current MCP revision
//! (2026-07-28) carry no connection state, so over HTTP every call names its instance.
//!
//! Resources: `session://context` and `session://state/{session_id}`; prompts `startup` and
//! `sign-off`. Served as Streamable HTTP at `/mcp` by `cclog serve`; `cclog mcp` relays
//! stdio to it.
//!
//! # Layout
//! - this file: the service of one connection — who is calling (identity headers), which
//!   instance they act as, the blocking helper — and the Streamable HTTP service at `/mcp`.
//! - [`tools`]: the tools, their arguments and results.
//! - [`resources`]: `session://context` and `session://state/{session_id}`.
//! - [`prompts`]: `startup` and `sign-off`.
//! - [`schema`]: the JSON Schemas of tools made loadable by every MCP client in use.

mod prompts;
mod resources;
mod schema;
mod subscriptions;
mod tools;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cclog_engine::Log;
use cclog_ingest::coordinator::{Identity, Instances, MAX_LEASE_SECONDS};
use cclog_ingest::kv_watch::CoordinatorWrites;
use cclog_projections::events::coordinator::Writer;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Extensions, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SubscriptionFilter,
};
#[allow(deprecated)]
use rmcp::model::{SubscribeRequestParams, UnsubscribeRequestParams};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{prompt_handler, tool_handler, ErrorData, RoleServer, ServerHandler};

use resources::{CONTEXT_URI, STATE_TEMPLATE};
use subscriptions::{notify_updates, Watched};
pub use tools::*;

/// The MCP service of one connection.
#[derive(Clone)]
pub struct CoordinatorMcp {
    log: Arc<Log>,
    identity: Arc<Identity>,
    /// Which scopes are written, for the waiters of `wait_for_change`.
    writes: Arc<CoordinatorWrites>,
    /// The instance this connection signed on as (stdio keeps it; HTTP has none).
    signed_on: Arc<Mutex<Option<String>>>,
    /// The resources this connection subscribed to (`resources/subscribe`), and whether
    /// their notifier runs.
    subscribed: subscriptions::Subscribed,
    notifying: Arc<std::sync::atomic::AtomicBool>,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl CoordinatorMcp {
    pub fn new(log: Arc<Log>, identity: Arc<Identity>, writes: Arc<CoordinatorWrites>) -> CoordinatorMcp {
        let tool_router = Self::loadable_router().clone();
        CoordinatorMcp {
            log,
            identity,
            writes,
            signed_on: Arc::default(),
            subscribed: Arc::default(),
            notifying: Arc::default(),
            tool_router,
            prompt_router: Self::prompt_router(),
        }
    }

    /// The tool router with its schemas rewritten by [`schema::make_loadable`], built once:
    /// stateless HTTP clients get a new service per request.
    fn loadable_router() -> &'static ToolRouter<CoordinatorMcp> {
        static ROUTER: std::sync::OnceLock<ToolRouter<CoordinatorMcp>> = std::sync::OnceLock::new();
        ROUTER.get_or_init(|| {
            let mut tool_router = Self::tool_router();
            schema::make_loadable(&mut tool_router);
            tool_router
        })
    }

    /// The tools as rmcp's macros make them, before [`schema::make_loadable`].
    #[cfg(test)]
    fn raw_tools() -> Vec<rmcp::model::Tool> {
        Self::tool_router().list_all()
    }

    /// The tools as this server lists them: schemas rewritten by [`schema::make_loadable`].
    pub fn loadable_tools() -> Vec<rmcp::model::Tool> {
        Self::loadable_router().list_all()
    }

    /// Who is calling: their identity, and the instance they act as.
    pub(crate) fn caller(&self, extensions: &Extensions, session_id: Option<String>) -> Result<Caller, String> {
        Ok(Caller { identity: self.identity(extensions)?, instance: self.instance(session_id)? })
    }

    /// The instance a call acts as: its `session_id`, else this connection's.
    pub(crate) fn instance(&self, session_id: Option<String>) -> Result<String, String> {
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
    pub(crate) fn identity(&self, extensions: &Extensions) -> Result<Identity, String> {
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

    /// Runs `work` on a blocking thread (the log's writes wait for an fsync) through the
    /// handlers' one helper, renewing the instance's lease.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        identity: &Identity,
        instance: Option<String>,
        work: impl FnOnce(&Log) -> cclog_ingest::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let (log, identity) = (Arc::clone(&self.log), identity.clone());
        crate::blocking::blocking(move || {
            if let Some(instance) = &instance {
                Instances::new(&log, &identity.machine, &identity.project, identity.lease).touch(instance);
            }
            work(&log)
        })
        .await
        .map_err(|error| match error {
            // A bug, not the caller's doing: the detail goes to the server's log only.
            crate::Error::Internal(detail) => {
                tracing::error!(%detail, "a coordinator tool failed");
                "the coordinator failed; the server's log has the details".to_string()
            }
            other => other.to_string(),
        })
    }
}

/// How sessions are meant to use the coordinator; the `session://context` resource and the
/// prompts repeat it.
const WORKFLOW: &str = "1. sign_on to claim an instance; keep its session_id. \
2. Read session://context to see who else is signed on, and list_scopes to see what is stored. \
3. Read your previous state: retrieve_data from the scope named by your session_id (or read session://state/<session_id>). \
4. As you work, store_data your progress under the scope named by your session_id, and shared facts under scopes all sessions read; \
use expected_version when several sessions update one key, and ttl_seconds for a claim that should lapse if you die. \
5. To hand work to a teammate, store your result under a key you agreed on; a teammate waiting for it calls wait_for_change on that \
key (after_version 0 until it first exists) instead of polling, and gets the value the moment it is stored. \
6. Before you stop, store a summary of where you are, then sign_off. Nothing is ever lost: key_history shows every value.";

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for CoordinatorMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .build(),
        )
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

    // Protocol revisions up to 2025-11-25 (rmcp marks them legacy).
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let identity = self.identity(&context.extensions).map_err(|error| ErrorData::invalid_params(error, None))?;
        let watched = Watched::of(&identity, &request.uri).map_err(|error| ErrorData::invalid_params(error, None))?;
        self.subscribed.lock().unwrap_or_else(PoisonError::into_inner).insert(request.uri, watched);
        if !self.notifying.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let peer = context.peer.clone();
            tokio::spawn(notify_updates(Arc::clone(&self.writes), Arc::clone(&self.subscribed), move |uri| {
                let peer = peer.clone();
                async move { peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_ok() }
            }));
        }
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscribed.lock().unwrap_or_else(PoisonError::into_inner).remove(&request.uri);
        Ok(())
    }

    // 2026-07-28: `subscriptions/listen` takes our resources' URIs.
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let ours = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| uri.as_str() == CONTEXT_URI || uri.starts_with("session://state/"))
            .cloned();
        Some(SubscriptionFilter::builder().resource_subscriptions(ours).build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let identity = self
            .identity(&context.request_context().extensions)
            .map_err(|error| ErrorData::invalid_params(error, None))?;
        let mut watched = std::collections::BTreeMap::new();
        for uri in context.accepted().resource_subscriptions.iter().flatten() {
            watched.insert(
                uri.clone(),
                Watched::of(&identity, uri).map_err(|error| ErrorData::invalid_params(error, None))?,
            );
        }
        let sink = context.sink().clone();
        let notifier = notify_updates(Arc::clone(&self.writes), Arc::new(Mutex::new(watched)), move |uri| {
            let sink = sink.clone();
            async move { sink.notify_resource_updated(uri).await.is_ok() }
        });
        tokio::select! {
            () = notifier => {}
            () = context.cancelled() => {}
        }
        Ok(())
    }
}

/// The header a relaying `cclog mcp` names its machine with.
pub const MACHINE_HEADER: &str = "x-cclog-machine";
/// The header a relaying `cclog mcp` names its project with.
pub const PROJECT_HEADER: &str = "x-cclog-project";
/// The header a relaying `cclog mcp` gives its lease with: how long its instance stays its
/// own after each call.
pub const LEASE_HEADER: &str = "x-cclog-lease-seconds";

/// A tool call's caller: who they are and which instance they act as.
pub(crate) struct Caller {
    pub(crate) identity: Identity,
    pub(crate) instance: String,
}

impl Caller {
    /// `scope` with the caller's `machine:project:` prefix.
    pub(crate) fn scope(&self, scope: &str) -> Result<String, String> {
        self.identity.full_scope(scope).map_err(|error| error.to_string())
    }

    pub(crate) fn writer(&self) -> Writer {
        Writer {
            instance: self.instance.clone(),
            machine: self.identity.machine.clone(),
            project: self.identity.project.clone(),
        }
    }
}

/// Escapes glob metacharacters in a literal prefix.
pub(crate) fn glob_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' | '?' | '[' | ']' => format!("[{c}]"),
            other => other.to_string(),
        })
        .collect()
}

/// A short random id for a holder.
pub(crate) fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// The Streamable HTTP service for `/mcp`: a fresh handler per connection (stateless
/// clients get one per request).
pub fn http_service(
    state: &crate::state::AppState,
    cancel: tokio_util::sync::CancellationToken,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    CoordinatorMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    // Host and Origin are checked for every route, `/mcp` included, by `crate::auth`, with
    // the names `--allowed-host` adds; rmcp's own check would refuse those.
    let config = rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_cancellation_token(cancel);
    let (log, identity, writes) =
        (Arc::clone(&state.log), Arc::clone(&state.coordinator), Arc::clone(&state.coordinator_writes));
    rmcp::transport::streamable_http_server::StreamableHttpService::new(
        move || Ok(CoordinatorMcp::new(Arc::clone(&log), Arc::clone(&identity), Arc::clone(&writes))),
        Default::default(),
        config,
    )
}
