//! The MCP server each session talks to (`Tools`): what it offers (`tools/list`, the timelines
//! as resources), and each call run for the caller its HTTP request was admitted as, its error
//! as a tool error with the sentence every route gives, stopped when the client cancels (the
//! answer it was streaming stops as on a hang-up), and logged.

use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::progress::Reporter;
use super::tools::{self, Output};
use super::Admitted;
use crate::error::{ApiError, ErrorKind};
use crate::videos::model::stamp;

/// How a client names a video's timeline.
const TIMELINE_URI: (&str, &str) = ("chatapi://videos/", "/timeline");
/// Timelines listed per `resources/list` page.
const RESOURCES_PAGE: u32 = 100;

/// A session's server: everything it needs comes with each request (`Admitted`).
#[derive(Clone, Default)]
pub struct Tools;

/// The admitted caller its HTTP request carried (`super::Endpoint::admit`).
fn admitted(context: &RequestContext<RoleServer>) -> Result<Arc<Admitted>, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<Admitted>>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request was not admitted", None))
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("chatapi", env!("CARGO_PKG_VERSION"))
                .with_title("chatapi video library"),
        )
        .with_instructions(
            "Your video library: add videos by link, search them for moments, ask questions \
             answered from what is said, shown and written in them (citing [MM:SS]), read their \
             transcripts. A video can be searched and asked about once its status is ready. \
             Each ready video's timeline is also a resource, chatapi://videos/{id}/timeline.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::catalogue()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let admitted = admitted(&context)?;
        let started = std::time::Instant::now();
        let name = request.name.to_string();
        let mut reporter = Reporter::of(&context);
        let arguments = request.arguments.unwrap_or_default();
        let run = tools::call(&name, arguments, &admitted, &mut reporter);
        // Dropping the call stops what it started: a streamed answer's relay sees a hang-up.
        let outcome = tokio::select! {
            outcome = run => outcome,
            () = context.ct.cancelled() => {
                log(&admitted, &name, started, "cancelled");
                return Err(ErrorData::internal_error("the client cancelled the call", None));
            }
        };
        let Some(outcome) = outcome else {
            return Err(ErrorData::invalid_params(
                format!("there is no tool named `{name}`; tools/list gives them"),
                None,
            ));
        };
        log(
            &admitted,
            &name,
            started,
            outcome.as_ref().map_or_else(|e| e.code(), |_| "ok"),
        );
        Ok(match outcome {
            Ok(Output { text, structured }) => {
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                result.structured_content = Some(structured);
                result
            }
            Err(error) => tool_error(&error),
        }
        .into())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let admitted = admitted(&context)?;
        let cursor = request.and_then(|r| r.cursor);
        let offset = match cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => c.parse::<u32>().map_err(|_| {
                ErrorData::invalid_params("the cursor is not one this server gave", None)
            })?,
        };
        let (videos, more) = tools::timelines(&admitted, offset, RESOURCES_PAGE)
            .await
            .map_err(|e| protocol_error(&e))?;
        let resources = videos
            .iter()
            .map(|video| {
                let length = video.duration_s.map(stamp).unwrap_or_default();
                Resource::new(timeline_uri(&video.id), video.name.clone())
                    .with_title(format!("Timeline of {}", video.name))
                    .with_description(format!(
                        "What is said, shown and written in {} {length}, moment by moment, with [MM:SS] stamps.",
                        video.name
                    ))
                    .with_mime_type("application/json")
            })
            .collect();
        let mut result = ListResourcesResult::with_all_items(resources)
            // Each tenant sees its own videos, which come and go.
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(0);
        result.next_cursor = more.then(|| (offset.saturating_add(RESOURCES_PAGE)).to_string());
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let template = ResourceTemplate::new(timeline_uri("{video_id}"), "timeline")
            .with_title("A video's timeline")
            .with_description("A ready video's timeline: segments with their stamps, what is said (cue by cue), on-screen text, scenes and keyframe links.")
            .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let admitted = admitted(&context)?;
        let id = request
            .uri
            .strip_prefix(TIMELINE_URI.0)
            .and_then(|rest| rest.strip_suffix(TIMELINE_URI.1))
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!(
                        "no resource `{}`: timelines are {}{{video_id}}{}",
                        clipped(&request.uri),
                        TIMELINE_URI.0,
                        TIMELINE_URI.1
                    ),
                    None,
                )
            })?;
        let library = admitted
            .incoming
            .library()
            .map_err(|e| protocol_error(&e))?;
        let mut timeline =
            crate::routes::videos::timeline_of(&admitted.incoming, library, admitted.tenant(), id)
                .await
                .map_err(|e| protocol_error(&e))?;
        admitted.absolute_links(&mut timeline);
        let contents = ResourceContents::text(timeline.to_string(), request.uri.clone())
            .with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

/// A tool call's log line, beside its HTTP request's.
fn log(admitted: &Admitted, tool: &str, started: std::time::Instant, outcome: &str) {
    tracing::info!(
        request_id = %admitted.incoming.request_id,
        route = "mcp",
        tool,
        duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        outcome,
        "mcp tool"
    );
}

fn timeline_uri(id: &str) -> String {
    format!("{}{id}{}", TIMELINE_URI.0, TIMELINE_URI.1)
}

/// At most 100 characters of what a caller sent, for a sentence that quotes it.
fn clipped(text: &str) -> String {
    text.chars().take(100).collect()
}

/// A failed call as the protocol's tool error: the sentence a route gives, and its envelope.
fn tool_error(error: &ApiError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(error.to_string())]);
    result.structured_content = Some(error.openai_json());
    result
}

/// A failed resource read as a protocol error, with the sentence a route gives.
fn protocol_error(error: &ApiError) -> ErrorData {
    let data = Some(error.openai_json());
    match error.kind() {
        ErrorKind::NotFound | ErrorKind::InvalidRequest => {
            ErrorData::resource_not_found(error.to_string(), data)
        }
        _ => ErrorData::internal_error(error.to_string(), data),
    }
}
