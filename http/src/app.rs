//! The one router: every route of the REST API (and so every operation of its OpenAPI
//! document, built from the same list), `/mcp`, and the layers every request passes —
//! outermost first: the request log (`LOG_LEVEL=debug`), the Host/Origin check
//! ([`crate::auth`]), CORS for the origins `--allow-origin` names, an idle timeout on
//! request bodies, the body limit, and on `/api` and `/mcp` the bearer token. A known path
//! with a wrong method is 405, an unknown one 404, both in the JSON error format.
//!
//! To add a route: write its handler with a `#[utoipa::path]` in the `routes` file its path
//! names, and list it here.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderName, Method};
use axum::Router;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth;
use crate::extract::BODY_LIMIT;
use crate::routes::{events, kv, plans, runs, service, sessions, teams, usage};
use crate::state::AppState;
use crate::Error;

/// The OpenAPI document's fixed parts; every path is added by the router from its handler.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "cclog",
        description = "Claude Code runs, sessions and history on a hash-chained, append-only log. \
            CC Manager's routes (same paths, methods and bodies) plus live streams, raw events, verify, \
            fork trees, diffs and replay. Errors are `{\"error\":{\"code\",\"message\"}}`. Requests \
            addressed to another host, or sent by a web page on another origin, are refused (403).",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "runs", description = "Start, resume, fork and cancel Claude Code runs; their messages"),
        (name = "sessions", description = "Sessions from runs and archived transcripts; forks, trees, diffs, replay"),
        (name = "plans", description = "Plans: tasks run in one Claude Code session, with TTL, fallback and retry"),
        (name = "teams", description = "Teams of Claude Code agents in containers and a tmux session"),
        (name = "coordinator", description = "The session coordinator's key-values: a scope's writes as they are recorded"),
        (name = "log", description = "The log itself: events, live tail, verification"),
        (name = "service", description = "The service: health, index, this document"),
    )
)]
struct ApiDoc;

/// Declares the bearer scheme `--token` enables; every `/api` operation lists it.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Required on every /api route when the server runs with --token"))
                    .build(),
            ),
        );
    }
}

/// Documents the one answer every operation can give before its handler runs: 403 for a
/// foreign `Host` or `Origin`.
struct ForbiddenEverywhere;

impl utoipa::Modify for ForbiddenEverywhere {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::path::Operation;
        use utoipa::openapi::ResponseBuilder;
        let forbidden = ResponseBuilder::new()
            .description("Addressed to a host this server does not answer to, or sent from another origin")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 4] =
                [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.entry("403".into()).or_insert_with(|| RefOr::T(forbidden.clone()));
            }
        }
    }
}

/// Every documented route, `/api/...` nested, without state.
fn documented_routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let api = OpenApiRouter::new()
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::start))
        .routes(routes!(runs::resume))
        .routes(routes!(runs::fork))
        .routes(routes!(runs::active_runs))
        .routes(routes!(runs::get_run, runs::cancel_run))
        .routes(routes!(runs::run_messages))
        .routes(routes!(runs::run_stream))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::get_session))
        .routes(routes!(sessions::session_messages))
        .routes(routes!(sessions::session_runs))
        .routes(routes!(sessions::session_forks))
        .routes(routes!(sessions::session_tree))
        .routes(routes!(sessions::session_diff))
        .routes(routes!(sessions::session_replay))
        .routes(routes!(usage::usage_report))
        .routes(routes!(teams::list_teams, teams::create_team))
        .routes(routes!(teams::get_team, teams::remove_team))
        .routes(routes!(teams::resume_team))
        .routes(routes!(teams::stop_team))
        .routes(routes!(teams::team_events))
        .routes(routes!(plans::run_plan, plans::list_plans))
        .routes(routes!(plans::get_plan, plans::cancel_plan))
        .routes(routes!(plans::resume_plan))
        .routes(routes!(plans::plan_events))
        .routes(routes!(events::list_events))
        .routes(routes!(events::event_stream))
        .routes(routes!(events::verify))
        .routes(routes!(kv::kv_stream))
        .routes(routes!(service::openapi_document))
        .routes(routes!(service::forward_command));
    let open = OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(service::root))
        .routes(routes!(service::health));
    (open, api)
}

/// The document's final touches, the same for the served and the printed one.
fn finish(document: &mut OpenApi) {
    utoipa::Modify::modify(&runs::RunLinks, document);
    utoipa::Modify::modify(&ForbiddenEverywhere, document);
}

/// The OpenAPI 3.1 document of this API, generated from the handlers' annotations.
pub fn openapi() -> OpenApi {
    let (open, api) = documented_routes();
    let mut document = open.nest("/api", api).into_openapi();
    finish(&mut document);
    document
}

/// The whole application: `/`, `/health`, `/api/...` and `/mcp`.
pub fn app(state: AppState) -> Router {
    let (open, api) = documented_routes();
    let token = axum::middleware::from_fn_with_state(Arc::clone(&state.access), auth::require_token);
    let (routes, mut document) = open.nest("/api", api.route_layer(token.clone())).split_for_parts();
    finish(&mut document);
    // A known path with a method it does not have: 405 in the JSON error format (axum adds
    // the Allow header).
    let routes = routes.method_not_allowed_fallback(|request: Request| async move {
        Error::MethodNotAllowed(request.method().to_string())
    });
    // MCP (Streamable HTTP) at /mcp, behind the same token as /api; it ends with the server.
    let cancel = tokio_util::sync::CancellationToken::new();
    let (closing, cancel_on_close) = (state.closing.clone(), cancel.clone());
    tokio::spawn(async move {
        closing.closed().await;
        cancel_on_close.cancel();
    });
    let mcp = Router::new().nest_service("/mcp", crate::mcp::http_service(&state, cancel)).layer(token);
    let mut app = routes
        .merge(mcp)
        .layer(axum::Extension(Arc::new(document)))
        .fallback(
            |request: Request| async move { Error::NoRoute(format!("{} {}", request.method(), request.uri().path())) },
        )
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.body_idle_timeout));
    if let Some(cors) = cors(&state) {
        app = app.layer(cors);
    }
    // At debug level (`LOG_LEVEL=debug`), one line per request, refused ones included:
    // method, path, status and time to the response's head — never headers (the token),
    // queries or bodies.
    let request_log = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        })
        .on_request(())
        .on_response(|response: &axum::response::Response, latency: std::time::Duration, _: &tracing::Span| {
            tracing::debug!(status = response.status().as_u16(), ms = latency.as_secs_f64() * 1000.0, "answered")
        })
        .on_body_chunk(())
        .on_eos(())
        .on_failure(());
    app.layer(axum::middleware::from_fn_with_state(Arc::clone(&state.access), auth::refuse_other_origins))
        .layer(request_log)
        .with_state(state)
}

/// CORS answers for the origins `--allow-origin` named; none without it.
fn cors(state: &AppState) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<header::HeaderValue> =
        state.access.extra_origins().iter().filter_map(|origin| origin.parse().ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([HeaderName::from_static("mcp-session-id")]),
    )
}
