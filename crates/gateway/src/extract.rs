//! The gateway's own extractors, whose refusals speak problem+json like every other error.
//!
//! axum's extractors answer bad input in plain text; these answer with the field at fault:
//! - [`Json`]: wrong or missing `Content-Type` → 415; malformed JSON or a body over
//!   1 MiB → 400; a wrong type, a missing field, an unknown field or enum value, a value a
//!   contracts newtype refuses → 422 with `errors[].field` the value's JSON path.
//! - [`Query`]: a query string that does not decode → 422.
//! - [`PathId`]: a path parameter that is not a UUID → 422 naming the parameter.
//! - [`IdempotencyKey`] and [`IfMatch`]: the two headers that steer commands.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, RawPathParamsRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};

/// A JSON body decoded into `T`, or a problem saying what is wrong with it. As a
/// response, `T` encoded as JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !has_media_type(request.headers(), is_json) {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let body = read_body(request, state).await?;
        decode_json(&body).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The body, within the router's limit.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::BadRequest(format!("request body too large: the limit is {} bytes", crate::MAX_BODY_BYTES))
        }
        other => ApiError::BadRequest(format!("cannot read the request body: {}", other.body_text())),
    })
}

/// Whether the request's `Content-Type` passes `accept` (parameters such as `charset`
/// are ignored).
pub fn has_media_type(headers: &HeaderMap, accept: fn(&str) -> bool) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| accept(&essence.trim().to_ascii_lowercase()))
        .unwrap_or(false)
}

fn is_json(essence: &str) -> bool {
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Decodes JSON into `T`, telling a malformed document (400) from wrong values (422).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => {
                let message = without_position(&inner.to_string());
                ApiError::invalid_field(field_of(&path, &message), message)
            }
            Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest(format!("malformed JSON: {inner}")),
        }
    })?;
    // Trailing characters after the document are malformed JSON too.
    deserializer.end().map_err(|error| ApiError::BadRequest(format!("malformed JSON: {error}")))?;
    Ok(value)
}

/// serde_json ends its messages with " at line L column C"; the field path says more.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// The bad field: the decoder's path, plus the field's name when the error is about a
/// field that is missing, unknown or given twice (the path then stops at its parent).
fn field_of(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let parent = if path == "." { "" } else { path };
    match named {
        Some(name) if parent.is_empty() => name.to_owned(),
        Some(name) if !parent.ends_with(name) => format!("{parent}.{name}"),
        _ if parent.is_empty() => "body".to_owned(),
        _ => parent.to_owned(),
    }
}

/// A query string decoded into `T`. Routes decode to strings and parse each parameter
/// themselves, so that a bad one is named; this refuses only what cannot be read at all.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query).map(Query).map_err(|error| {
            let message = error.to_string();
            let field = if message.contains('`') { field_of("", &message) } else { "query".to_owned() };
            ApiError::invalid_field(field, message)
        })
    }
}

/// A parameter of the query, parsed, or a 422 naming it.
pub fn parse_query_parameter<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
    expected: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let value = value?;
    match value.trim().parse() {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            errors.push(FieldError::new(name, format!("must be {expected}")));
            None
        }
    }
}

/// The one UUID path parameter of a route (`{id}`, `{product_id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let parameters =
            RawPathParams::from_request_parts(parts, state).await.map_err(|rejection| match rejection {
                RawPathParamsRejection::InvalidUtf8InPathParam(_) => {
                    ApiError::invalid_field("id", "a path parameter is not valid UTF-8")
                }
                other => ApiError::internal(format!("a route without its path parameter: {other}")),
            })?;
        let Some((name, value)) = parameters.iter().next() else {
            return Err(ApiError::internal("a route without its path parameter"));
        };
        value.parse::<Uuid>().map(PathId).map_err(|_| ApiError::invalid_field(name, format!("{value:?} is not a UUID")))
    }
}

/// The `Idempotency-Key` of a mutating request, and what it applies to.
///
/// The id a command needs (`user_id`, `product_id`, …) is derived from the key, the
/// acting user and the request's method and path: the same request sent again names the
/// same id, and the service answers it as it answered the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: Option<String>,
    method: Method,
    path: String,
}

/// The namespace of the ids derived from idempotency keys. Fixed forever: changing it
/// would turn every retry in flight during an upgrade into a second command.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x3f1c_5a0e_9b7d_4e21_8c64_2d90_a7b3_e515);

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl IdempotencyKey {
    /// The id of the command this request makes: derived from the key when there is one,
    /// else new.
    pub fn command_id(&self, acting_user: Option<Uuid>) -> Uuid {
        match &self.key {
            Some(key) => {
                let user = acting_user.map_or_else(|| "anon".to_owned(), |user| user.to_string());
                let name = format!("{user}:{} {}:{key}", self.method, self.path);
                Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes())
            }
            None => Uuid::now_v7(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let key = match parts.headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => {
                let bytes = value.as_bytes();
                if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|byte| (0x20..=0x7e).contains(byte)) {
                    return Err(ApiError::invalid_field(
                        "Idempotency-Key",
                        "must be 1 to 255 printable ASCII characters",
                    ));
                }
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
        };
        Ok(IdempotencyKey { key, method: parts.method.clone(), path: parts.uri.path().to_owned() })
    }
}

/// The stream version a request expects, from `If-Match: "<version>"`. Absent or `*`: no
/// check. Anything else that is not one strong ETag of ours cannot match → 412.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let malformed =
            || ApiError::PreconditionFailed("If-Match must be the ETag a GET answered, such as \"3\", or *".to_owned());
        let value = value.to_str().map_err(|_| malformed())?.trim();
        if value == "*" {
            return Ok(IfMatch(None));
        }
        value
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|version| version.parse::<u64>().ok())
            .map(|version| IfMatch(Some(version)))
            .ok_or_else(malformed)
    }
}

/// The `ETag` of a stream version.
pub fn entity_tag(version: u64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use contracts::values::{Price, Sku};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Only decoded, to see how decoding fails.
    struct NewProduct {
        sku: Sku,
        price: Price,
        tags: Vec<String>,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Physical,
    }

    fn json_request(content_type: Option<&str>, body: impl Into<axum::body::Body>) -> Request {
        let mut builder = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        builder.body(body.into()).expect("a request")
    }

    async fn decode(content_type: Option<&str>, body: &str) -> Result<NewProduct, ApiError> {
        Json::<NewProduct>::from_request(json_request(content_type, body.to_owned()), &()).await.map(|json| json.0)
    }

    fn fields(error: &ApiError) -> Vec<String> {
        match error {
            ApiError::Unprocessable { errors, .. } => errors.iter().map(|error| error.field.clone()).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    const GOOD: &str =
        r#"{"sku": "ab-1", "price": {"amount": 100, "currency": "EUR"}, "tags": [], "kind": "physical"}"#;

    #[tokio::test]
    async fn a_good_body_decodes() {
        let product = decode(Some("application/json; charset=utf-8"), GOOD).await.expect("decodes");
        assert_eq!(product.sku.as_str(), "AB-1");
    }

    #[tokio::test]
    async fn a_missing_or_wrong_content_type_is_415() {
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            let error = decode(content_type, GOOD).await.expect_err("refused");
            assert_eq!(error.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        }
    }

    #[tokio::test]
    async fn malformed_json_is_400() {
        for body in ["{\"sku\": ", "not json", "", &format!("{GOOD} {{}}")] {
            let error = decode(Some("application/json"), body).await.expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[tokio::test]
    async fn wrong_values_are_422_naming_the_field() {
        let cases = [
            (r#"{"sku": "ab 1", "price": {"amount": 1, "currency": "EUR"}, "tags": [], "kind": "physical"}"#, "sku"),
            (
                r#"{"sku": "a", "price": {"amount": "1", "currency": "EUR"}, "tags": [], "kind": "physical"}"#,
                "price.amount",
            ),
            (r#"{"sku": "a", "price": {"amount": -1, "currency": "EUR"}, "tags": [], "kind": "physical"}"#, "price"),
            (
                r#"{"sku": "a", "price": {"amount": 1, "currency": "XYZ"}, "tags": [], "kind": "physical"}"#,
                "price.currency",
            ),
            (r#"{"sku": "a", "price": {"amount": 1}, "tags": [], "kind": "physical"}"#, "price.currency"),
            (r#"{"price": {"amount": 1, "currency": "EUR"}, "tags": [], "kind": "physical"}"#, "sku"),
            (r#"{"sku": "a", "price": {"amount": 1, "currency": "EUR"}, "tags": [3], "kind": "physical"}"#, "tags[0]"),
            (r#"{"sku": "a", "price": {"amount": 1, "currency": "EUR"}, "tags": [], "kind": "digital"}"#, "kind"),
            (
                r#"{"sku": "a", "price": {"amount": 1, "currency": "EUR"}, "tags": [], "kind": "physical", "extra": 1}"#,
                "extra",
            ),
            ("[]", "body"),
        ];
        for (body, field) in cases {
            let error = decode(Some("application/json"), body).await.expect_err("refused");
            assert_eq!(fields(&error), vec![field.to_owned()], "{body}");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_400() {
        let app = axum::Router::new()
            .route("/", axum::routing::post(|Json(value): Json<serde_json::Value>| async move { Json(value) }))
            .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_BODY_BYTES));
        let body = format!("\"{}\"", "x".repeat(crate::MAX_BODY_BYTES));
        let response =
            tower::ServiceExt::oneshot(app, json_request(Some("application/json"), body)).await.expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        assert!(String::from_utf8_lossy(&body).contains("too large"));
    }

    async fn parts(request: axum::http::request::Builder) -> Parts {
        request.body(()).expect("a request").into_parts().0
    }

    #[tokio::test]
    async fn a_path_parameter_that_is_not_a_uuid_is_422_naming_it() {
        let app = axum::Router::new()
            .route("/products/{product_id}", axum::routing::get(|PathId(id): PathId| async move { id.to_string() }));
        let request = Request::builder().uri("/products/not-a-uuid").body(axum::body::Body::empty()).expect("request");
        let response = tower::ServiceExt::oneshot(app.clone(), request).await.expect("answers");
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(problem["errors"][0]["field"], "product_id");
        let id = Uuid::now_v7();
        let request =
            Request::builder().uri(format!("/products/{id}")).body(axum::body::Body::empty()).expect("request");
        assert_eq!(tower::ServiceExt::oneshot(app, request).await.expect("answers").status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn idempotency_keys_are_checked_and_derive_stable_ids() {
        let mut first =
            parts(Request::builder().method("POST").uri("/api/products").header(IDEMPOTENCY_KEY, "k-1")).await;
        let key = IdempotencyKey::from_request_parts(&mut first, &()).await.expect("valid");
        let user = Some(Uuid::now_v7());
        assert_eq!(key.command_id(user), key.command_id(user));
        assert_ne!(key.command_id(user), key.command_id(None));
        let mut other_path =
            parts(Request::builder().method("POST").uri("/api/users").header(IDEMPOTENCY_KEY, "k-1")).await;
        let other = IdempotencyKey::from_request_parts(&mut other_path, &()).await.expect("valid");
        assert_ne!(key.command_id(user), other.command_id(user));

        let mut none = parts(Request::builder().method("POST").uri("/api/users")).await;
        let none = IdempotencyKey::from_request_parts(&mut none, &()).await.expect("valid");
        assert_ne!(none.command_id(None), none.command_id(None));

        for bad in ["".to_owned(), "x".repeat(256), "tab\there".to_owned()] {
            let mut request =
                parts(Request::builder().method("POST").uri("/").header(IDEMPOTENCY_KEY, bad.as_str())).await;
            let error = IdempotencyKey::from_request_parts(&mut request, &()).await.expect_err("refused");
            assert_eq!(fields(&error), vec!["Idempotency-Key".to_owned()], "{bad:?}");
        }
    }

    #[tokio::test]
    async fn if_match_gives_the_expected_version() {
        async fn if_match(value: &str) -> Result<IfMatch, ApiError> {
            let mut request = parts(Request::builder().header(header::IF_MATCH, value)).await;
            IfMatch::from_request_parts(&mut request, &()).await
        }
        assert_eq!(if_match("\"7\"").await.expect("valid"), IfMatch(Some(7)));
        assert_eq!(if_match("*").await.expect("valid"), IfMatch(None));
        for bad in ["7", "W/\"7\"", "\"seven\"", "\"1\", \"2\""] {
            let error = if_match(bad).await.expect_err("refused");
            assert_eq!(error.status(), StatusCode::PRECONDITION_FAILED, "{bad}");
        }
        let mut absent = parts(Request::builder()).await;
        assert_eq!(IfMatch::from_request_parts(&mut absent, &()).await.expect("valid"), IfMatch(None));
    }

    #[tokio::test]
    async fn a_query_parameter_given_twice_is_422_naming_it() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)] // Only decoded, to see how decoding fails.
        struct Page {
            limit: Option<String>,
        }
        let mut request = parts(Request::builder().uri("/?limit=1&limit=2")).await;
        let error = Query::<Page>::from_request_parts(&mut request, &()).await.expect_err("refused");
        assert_eq!(fields(&error), vec!["limit".to_owned()]);
    }

    #[test]
    fn query_parameters_are_named_when_they_do_not_parse() {
        let mut errors = Vec::new();
        assert_eq!(parse_query_parameter::<u32>("limit", Some("20"), "a number", &mut errors), Some(20));
        assert_eq!(parse_query_parameter::<u32>("limit", Some("x"), "a number", &mut errors), None);
        assert_eq!(parse_query_parameter::<u32>("limit", None, "a number", &mut errors), None);
        assert_eq!(errors, vec![FieldError::new("limit", "must be a number")]);
    }
}
