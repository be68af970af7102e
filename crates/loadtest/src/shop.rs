//! The shop as the virtual users see it: one timed HTTP request at a time, each recorded
//! under its endpoint's name (the route, not the URL, so that every product page counts
//! as one endpoint).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::Value;

use crate::metrics::Metrics;

/// The base URL, the HTTP client and where to record.
#[derive(Debug, Clone)]
pub(crate) struct Shop {
    client: Client,
    base: String,
    pub metrics: Arc<Metrics>,
}

/// A request that did not answer what was expected; it is already recorded as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed;

/// The longest sample of an error body kept for the report.
const SAMPLE_LENGTH: usize = 300;

impl Shop {
    pub fn new(client: Client, base: String, metrics: Arc<Metrics>) -> Shop {
        Shop { client, base, metrics }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends `request`, records its latency (until the whole body is read) under
    /// `endpoint`, and answers the JSON body of a 2xx answer (Null when it has none).
    /// Anything else is recorded as an error of kind `"{endpoint}: HTTP {status}"` or
    /// `"{endpoint}: {transport failure}"`.
    pub async fn call(&self, endpoint: &'static str, request: RequestBuilder) -> Result<Value, Failed> {
        let sent = Instant::now();
        let answer = receive(request).await;
        let latency = sent.elapsed();
        match answer {
            Ok((status, body)) if status.is_success() => {
                self.metrics.record_request(endpoint, latency, None);
                Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
            }
            Ok((status, body)) => {
                let kind = format!("{endpoint}: HTTP {}", status.as_u16());
                self.metrics.record_request(endpoint, latency, Some((kind, sample(&body))));
                Err(Failed)
            }
            Err(error) => {
                let kind = format!("{endpoint}: {}", transport_kind(&error));
                self.metrics.record_request(endpoint, latency, Some((kind, error.to_string())));
                Err(Failed)
            }
        }
    }
}

async fn receive(request: RequestBuilder) -> Result<(StatusCode, bytes::Bytes), reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.bytes().await?))
}

/// How a request failed below HTTP.
pub(crate) fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "broken answer"
    } else {
        "transport error"
    }
}

/// The start of an error body, as text.
fn sample(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(SAMPLE_LENGTH) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Pauses that grow by half each time up to a ceiling: how an order is polled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    next: Duration,
    ceiling: Duration,
}

impl Backoff {
    pub fn new(first: Duration, ceiling: Duration) -> Backoff {
        Backoff { next: first, ceiling }
    }

    /// The pause to take now; the next one is half as long again.
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 3 / 2).min(self.ceiling);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_backs_off_to_a_ceiling() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
        let pauses: Vec<u128> = (0..6).map(|_| backoff.pause().as_millis()).collect();
        assert_eq!(pauses, vec![10, 15, 22, 33, 40, 40]);
    }

    #[test]
    fn error_samples_are_cut_on_a_character_boundary() {
        assert_eq!(sample(b"short"), "short");
        let long = "é".repeat(400);
        let cut = sample(long.as_bytes());
        assert_eq!(cut.chars().count(), SAMPLE_LENGTH + 1);
        assert!(cut.ends_with('…'));
    }
}
