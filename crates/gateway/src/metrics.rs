//! Prometheus metrics: requests counted and timed per matched route, and `GET /metrics`.
//!
//! `metrics` has one global recorder per process. The gateway installs a Prometheus
//! recorder the first time a router is built; if something else installed one first,
//! the gateway still runs, and `/metrics` shows only what its own recorder saw.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const REQUESTS_TOTAL: &str = "http_requests_total";
const REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Buckets for request durations, from a cached read to a bus timeout.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handle of the process's Prometheus recorder, installing it on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Only an empty bucket list is refused; ours is not, but a summary is better
        // than no metrics at all.
        let builder = match builder.set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
        {
            Ok(builder) => builder,
            Err(error) => {
                tracing::warn!(%error, "request durations will be a summary");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only the gateway's own");
        }
        handle
    })
}

/// Counts and times one answered request.
pub fn record_request(method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
    let labels = [("method", method.to_string()), ("route", route.to_owned()), ("status", status.as_u16().to_string())];
    metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
    let labels = [("method", method.to_string()), ("route", route.to_owned())];
    metrics::histogram!(REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// `GET /metrics`: the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn serve_metrics() -> Response {
    let body = handle().render();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
        .into_response()
}
