//! `GET /docs`: an interactive page for the API that works offline.
//!
//! No CDN: the page, its script and its stylesheet are compiled into the binary. The
//! script reads `/api/openapi.json`, lists every operation with its parameters and body
//! schema, and offers a form to send a request and see the answer.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/docs.html");
const SCRIPT: &str = include_str!("../assets/docs.js");
const STYLESHEET: &str = include_str!("../assets/docs.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // Assets change only with the binary; an hour of caching is plenty.
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
    ];
    (headers, body).into_response()
}

pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}
