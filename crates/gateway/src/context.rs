//! The request context: the ids that follow a request from HTTP onto the bus, the root
//! span each request runs in, and what every answer gets on its way out.
//!
//! Each request has a request id (`x-request-id`, the client's or a new UUID v7) and a
//! correlation id (`x-correlation-id` if the client sent a UUID, else new). Both are on
//! the request's span and its answer; the correlation id, the acting user and the
//! client's `traceparent` travel on in the [`MessageContext`] of every bus request, so
//! the events the request causes carry them too.

use std::any::Any;
use std::convert::Infallible;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventshop_core::bus::MessageContext;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{ApiError, PROBLEM_JSON, problem, problem_response};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// New request ids are UUID v7: they sort by time in the logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestIdV7;

impl MakeRequestId for MakeRequestIdV7 {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}

/// The ids of one request, as handlers see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub correlation_id: Uuid,
    /// The client's W3C `traceparent`, when it sent a well-formed one.
    pub traceparent: Option<String>,
}

impl RequestContext {
    fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let text = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
        RequestContext {
            request_id: text(&REQUEST_ID).map_or_else(|| Uuid::now_v7().to_string(), str::to_owned),
            correlation_id: text(&CORRELATION_ID).and_then(|value| value.parse().ok()).unwrap_or_else(Uuid::now_v7),
            traceparent: text(&TRACEPARENT).filter(|value| is_traceparent(value)).map(str::to_owned),
        }
    }

    /// The context of one bus request made for this HTTP request by `acting_user`. Each
    /// bus request is its own message; the HTTP request's correlation id is their
    /// transaction, and its cause.
    pub fn message(&self, acting_user: Option<Uuid>) -> MessageContext {
        MessageContext {
            message_id: Uuid::now_v7(),
            correlation_id: self.correlation_id,
            causation_id: self.correlation_id,
            acting_user,
            traceparent: self.traceparent.clone(),
        }
    }
}

/// `version-traceid-parentid-flags`, lower-case hex (W3C Trace Context §3.2).
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, length: usize| {
        part.len() == length && part.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|byte| byte != b'0')
        && parts[2].bytes().any(|byte| byte != b'0')
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        // The middleware always puts it there; a router built without it still works.
        Ok(parts.extensions.get::<RequestContext>().cloned().unwrap_or_else(|| Self::from_headers(&parts.headers)))
    }
}

/// The middleware every request passes: sets up its context and root span, and on the
/// way out adds the correlation id and `Cache-Control`, turns a bare error answer into a
/// problem, and counts the request.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let context = RequestContext::from_headers(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request.extensions().get::<MatchedPath>().map(|matched| matched.as_str().to_owned());
    let route_label = route.clone().unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http_request",
        method = %method,
        route = %route_label,
        request_id = %context.request_id,
        correlation_id = %context.correlation_id,
        user_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let correlation_id = context.correlation_id;
    request.extensions_mut().insert(context);

    let mut response = next.run(request).instrument(span.clone()).await;

    if (response.status().is_client_error() || response.status().is_server_error()) && !is_json_answer(&response) {
        response = as_problem(response);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&correlation_id.to_string()) {
        headers.insert(CORRELATION_ID, value);
    }
    if (path.starts_with("/api/") || path == "/api" || path.starts_with("/oauth/"))
        && !headers.contains_key(header::CACHE_CONTROL)
    {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    let status = response.status();
    let elapsed = started.elapsed();
    span.record("status", status.as_u16());
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1000.0, "answered");
    });
    crate::metrics::record_request(&method, &route_label, status, elapsed);
    response
}

fn is_json_answer(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(PROBLEM_JSON) || value.starts_with("application/json"))
}

/// An error answered by a layer or by axum itself (405 with its `Allow` header, a body
/// limit), made a problem like every other; its headers are kept.
fn as_problem(response: Response) -> Response {
    let (mut parts, _body) = response.into_parts();
    let detail = match parts.status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not answer this method; see the Allow header",
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large",
        StatusCode::REQUEST_TIMEOUT => "the request took too long",
        status if status.is_server_error() => "the server failed to answer; the failure has been logged",
        _ => "the request was refused",
    };
    let answer = problem_response(&problem(parts.status, detail, Vec::new()));
    let (answer_parts, body) = answer.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(answer_parts.headers);
    Response::from_parts(parts, body)
}

/// What a panicking handler answers: a 500 problem. The panic is logged; its message,
/// which may name internals, is not shown.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format!("a handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_correlation_id_is_kept_only_if_it_is_a_uuid() {
        let id = Uuid::now_v7();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(CORRELATION_ID, HeaderValue::from_str(&id.to_string()).expect("ascii"));
        assert_eq!(RequestContext::from_headers(&headers).correlation_id, id);
        headers.insert(CORRELATION_ID, HeaderValue::from_static("not-a-uuid"));
        assert_ne!(RequestContext::from_headers(&headers).correlation_id.to_string(), "not-a-uuid");
    }

    #[test]
    fn the_message_context_carries_correlation_user_and_trace() {
        let mut headers = axum::http::HeaderMap::new();
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(traceparent));
        let context = RequestContext::from_headers(&headers);
        let user = Uuid::now_v7();
        let message = context.message(Some(user));
        assert_eq!((message.correlation_id, message.acting_user), (context.correlation_id, Some(user)));
        assert_eq!(message.traceparent.as_deref(), Some(traceparent));
        assert_ne!(context.message(None).message_id, message.message_id);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_an_opaque_500_problem() {
        use tower::ServiceExt;
        async fn panicking() -> StatusCode {
            panic!("secret internals")
        }
        let app = axum::Router::new()
            .route("/", axum::routing::get(panicking))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response));
        let request = axum::http::Request::builder().uri("/").body(axum::body::Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("answers");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }

    #[test]
    fn only_well_formed_traceparents_are_passed_on() {
        assert!(is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert!(!is_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
        assert!(!is_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
        assert!(!is_traceparent("garbage"));
    }
}
