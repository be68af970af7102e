//! The gateway's one error type, [`ApiError`], and how it becomes an HTTP answer: an
//! RFC 9457 `application/problem+json` document.
//!
//! Every failure a handler or extractor can meet ends here, so that every error the API
//! gives speaks the same format. 4xx answers say exactly what is wrong, naming the bad
//! fields; 5xx answers are opaque, and their cause is logged once, here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventshop_core::bus::{BusError, CallError, Rejection, RejectionKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error answer but the token endpoint's (RFC 6749 has its own).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Where the bad value is: a JSON path such as `price.amount`, a query parameter, a
    /// path parameter or a header name.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// An RFC 9457 problem document, as the API sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// The bad fields, for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Everything that can go wrong answering a request. Each variant is one status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read at all (malformed JSON, a body over 1 MiB).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no bearer token, or one whose signature, algorithm, issuer or expiry is wrong.
    /// Answered with `WWW-Authenticate: Bearer`.
    #[error("{detail}")]
    Unauthorized {
        detail: String,
        /// Whether a token was sent (RFC 6750 then adds `error="invalid_token"`).
        token_sent: bool,
    },
    /// 403: the caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the current state (a duplicate email or sku).
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` names a version that is not the current one, or is malformed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 415: the body is not of the media type the route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the request reads but its values are wrong; `errors` names each bad field.
    #[error("{detail}")]
    Unprocessable { detail: String, errors: Vec<FieldError> },
    /// 429: too many failed logins; `Retry-After` says when to try again.
    #[error("too many failed logins; retry in {} s", retry_after.as_secs())]
    TooManyRequests { retry_after: Duration },
    /// 500: the gateway or a service failed. Opaque; the cause is logged.
    #[error("internal error: {0}")]
    Internal(String),
    /// 502: the bus could not carry the request or its reply. Opaque; logged.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// 503: no instance of the service that answers this is running.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 504: the service did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
}

impl ApiError {
    /// A 422 for one bad field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(field, message);
        ApiError::Unprocessable {
            detail: format!("{} is invalid: {}", error.field, error.message),
            errors: vec![error],
        }
    }

    /// A 422 for several bad fields.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [only] => format!("{} is invalid: {}", only.field, only.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        ApiError::Unprocessable { detail, errors }
    }

    /// A 500 whose cause is logged when the answer is made, and never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The problem document of this error. The detail of a 500 or 502 is replaced by a
    /// fixed sentence: the cause may hold internals that are nobody's business.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(_) => "the server failed to answer; the failure has been logged".to_owned(),
            ApiError::BadGateway(_) => "a service could not be reached; the failure has been logged".to_owned(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Unprocessable { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        problem(status, detail, errors)
    }
}

/// A problem document for `status`.
pub fn problem(status: StatusCode, detail: impl Into<String>, errors: Vec<FieldError>) -> Problem {
    Problem {
        problem_type: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.into(),
        errors,
    }
}

/// The `application/problem+json` response of a problem document.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // A Problem holds only strings and numbers: encoding it cannot fail, but if it ever
    // did, an empty object still tells the status.
    let body = serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) | ApiError::BadGateway(cause) => {
                tracing::error!(status = self.status().as_u16(), cause = %cause, "request failed");
            }
            ApiError::ServiceUnavailable(_) | ApiError::GatewayTimeout(_) => {
                tracing::warn!(status = self.status().as_u16(), error = %self, "request failed");
            }
            _ => {}
        }
        let mut response = problem_response(&self.problem());
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized { token_sent, .. } => {
                let challenge = if *token_sent {
                    r#"Bearer realm="eventshop", error="invalid_token""#
                } else {
                    r#"Bearer realm="eventshop""#
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            ApiError::TooManyRequests { retry_after } => {
                // Round up: retrying a fraction of a second early would only fail again.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let Rejection { kind, message, details } = rejection;
        match kind {
            RejectionKind::Invalid => {
                ApiError::Unprocessable { errors: field_errors(details.as_ref()), detail: message }
            }
            RejectionKind::NotFound => ApiError::NotFound(message),
            RejectionKind::Conflict => ApiError::Conflict(message),
            RejectionKind::PreconditionFailed => ApiError::PreconditionFailed(message),
            RejectionKind::Forbidden => ApiError::Forbidden(message),
            RejectionKind::Internal => ApiError::Internal(format!("a service answered: {message}")),
            RejectionKind::Unavailable => ApiError::ServiceUnavailable(message),
        }
    }
}

/// The `errors` of a rejection's details (`{"errors": [{"field", "message"}]}`); anything
/// else in the details is the service's business and is left out.
fn field_errors(details: Option<&serde_json::Value>) -> Vec<FieldError> {
    details
        .and_then(|details| details.get("errors"))
        .and_then(|errors| serde_json::from_value::<Vec<FieldError>>(errors.clone()).ok())
        .unwrap_or_default()
}

impl From<BusError> for ApiError {
    fn from(error: BusError) -> Self {
        match error {
            BusError::Timeout { service, after, .. } => {
                ApiError::GatewayTimeout(format!("the {service} service did not answer within {} s", after.as_secs()))
            }
            BusError::NoResponders { service } => {
                ApiError::ServiceUnavailable(format!("the {service} service is not running; try again later"))
            }
            BusError::Transport(cause) => ApiError::BadGateway(format!("bus transport: {cause}")),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Rejected(rejection) => rejection.into(),
            CallError::Bus(error) => error.into(),
            CallError::Codec(error) => ApiError::Internal(format!("cannot encode or decode a bus message: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("an in-memory body");
        (parts.status, parts.headers, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    #[tokio::test]
    async fn rejections_map_to_their_statuses() {
        let cases = [
            (RejectionKind::Invalid, 422),
            (RejectionKind::NotFound, 404),
            (RejectionKind::Conflict, 409),
            (RejectionKind::PreconditionFailed, 412),
            (RejectionKind::Forbidden, 403),
            (RejectionKind::Internal, 500),
            (RejectionKind::Unavailable, 503),
        ];
        for (kind, status) in cases {
            let (answered, headers, body) = answer(Rejection::new(kind, "because").into()).await;
            assert_eq!(answered.as_u16(), status, "{kind:?}");
            assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(body["status"], status);
            assert_eq!(body["type"], "about:blank");
        }
    }

    #[tokio::test]
    async fn an_invalid_rejection_names_its_fields() {
        let rejection = Rejection::new(RejectionKind::Invalid, "bad email")
            .with_details(serde_json::json!({"errors": [{"field": "email", "message": "taken form"}]}));
        let (status, _, body) = answer(rejection.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["detail"], "bad email");
        assert_eq!(body["errors"], serde_json::json!([{"field": "email", "message": "taken form"}]));
    }

    #[tokio::test]
    async fn internal_errors_are_opaque() {
        let rejection = Rejection::new(RejectionKind::Internal, "disk /var/lib/secret full");
        let (_, _, body) = answer(rejection.into()).await;
        assert!(!body.to_string().contains("secret"), "{body}");
        let (status, _, body) =
            answer(BusError::transport(std::io::Error::other("nats://10.0.0.1 refused")).into()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(!body.to_string().contains("10.0.0.1"), "{body}");
    }

    #[tokio::test]
    async fn bus_errors_map_to_gateway_statuses() {
        let timeout = BusError::Timeout {
            service: "catalog".into(),
            operation: "GetProduct".into(),
            after: Duration::from_secs(10),
        };
        assert_eq!(answer(timeout.into()).await.0, StatusCode::GATEWAY_TIMEOUT);
        let missing = BusError::NoResponders { service: "catalog".into() };
        assert_eq!(answer(missing.into()).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn unauthorized_challenges_and_too_many_requests_says_when() {
        let (_, headers, _) = answer(ApiError::Unauthorized { detail: "no token".into(), token_sent: false }).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="eventshop""#);
        let (status, headers, _) = answer(ApiError::TooManyRequests { retry_after: Duration::from_millis(2500) }).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "3");
    }
}
