//! Identity's routes: registration, the OAuth 2.0 token endpoint, the profile and the
//! addresses of the user who is logged in.
//!
//! The token endpoint follows RFC 6749 rather than the rest of the API: its body is
//! form-encoded and its errors are `{error, error_description}` with 400. Failed password
//! logins count against the login limit (429 past it).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contracts::Role;
use contracts::identity::{
    AddAddress, Address, AddressInput, ChangeProfile, GetUser, LogIn, RefreshSession, RegisterUser, RemoveAddress,
    Session, User,
};
use contracts::values::{AddressLine, CountryCode, Email, Password, PersonName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, Problem};
use crate::extract::{IdempotencyKey, IfMatch, Json, PathId, has_media_type, read_body};
use crate::routes::{created, with_entity_tag};
use crate::state::AppState;

/// A registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(value_type = String, format = "email", example = "ann@example.com")]
    pub email: Email,
    /// 8 to 256 characters.
    #[schema(value_type = String, format = "password", min_length = 8, max_length = 256)]
    pub password: Password,
    #[schema(value_type = String, min_length = 1, max_length = 100, example = "Ann")]
    pub name: PersonName,
}

/// A role: what a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Role)]
pub enum RoleBody {
    Customer,
    Admin,
}

impl From<Role> for RoleBody {
    fn from(role: Role) -> Self {
        match role {
            Role::Customer => RoleBody::Customer,
            Role::Admin => RoleBody::Admin,
        }
    }
}

/// A user, without credentials.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = User)]
pub struct UserBody {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: RoleBody,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        UserBody {
            id: user.id,
            email: user.email.to_string(),
            name: user.name.to_string(),
            role: user.role.into(),
            created_at: user.created_at,
        }
    }
}

/// The profile fields to change; those left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeProfileRequest {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    #[serde(default)]
    pub name: Option<PersonName>,
}

/// A postal address as entered.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// Who receives the parcel.
    #[schema(value_type = String, example = "Ann Smith")]
    pub name: PersonName,
    #[schema(value_type = String, example = "1 Main Street")]
    pub line1: AddressLine,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub line2: Option<AddressLine>,
    #[schema(value_type = String, example = "Berlin")]
    pub city: AddressLine,
    #[schema(value_type = String, example = "10115")]
    pub postal_code: AddressLine,
    /// ISO 3166-1 alpha-2.
    #[schema(value_type = String, example = "DE")]
    pub country: CountryCode,
}

impl From<AddressRequest> for AddressInput {
    fn from(request: AddressRequest) -> Self {
        AddressInput {
            name: request.name,
            line1: request.line1,
            line2: request.line2,
            city: request.city,
            postal_code: request.postal_code,
            country: request.country,
        }
    }
}

/// A stored address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Address)]
pub struct AddressBody {
    pub id: Uuid,
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl From<&Address> for AddressBody {
    fn from(address: &Address) -> Self {
        let input = &address.address;
        AddressBody {
            id: address.id,
            name: input.name.to_string(),
            line1: input.line1.to_string(),
            line2: input.line2.as_ref().map(ToString::to_string),
            city: input.city.to_string(),
            postal_code: input.postal_code.to_string(),
            country: input.country.to_string(),
        }
    }
}

/// A postal address as an order or a shipment keeps it: what was entered, without an id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = PostalAddress)]
pub struct PostalAddressBody {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl From<&AddressInput> for PostalAddressBody {
    fn from(input: &AddressInput) -> Self {
        PostalAddressBody {
            name: input.name.to_string(),
            line1: input.line1.to_string(),
            line2: input.line2.as_ref().map(ToString::to_string),
            city: input.city.to_string(),
            postal_code: input.postal_code.to_string(),
            country: input.country.to_string(),
        }
    }
}

/// The user's addresses; one page holds them all.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddressList {
    pub items: Vec<AddressBody>,
    /// Always null: a user has few addresses.
    pub next_cursor: Option<String>,
}

/// `POST /api/users`: registers a customer.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "identity",
    request_body = RegisterRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first request did")),
    responses(
        (status = 201, description = "Registered", body = UserBody,
            headers(("Location" = String, description = "/api/users/me"), ("ETag" = String))),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    idempotency: IdempotencyKey,
    Json(request): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    let command = RegisterUser {
        user_id: idempotency.command_id(None),
        email: request.email,
        password: request.password,
        name: request.name,
        role: Role::Customer,
    };
    let user = state.call(&command, context.message(None)).await?;
    Ok(created("/api/users/me", user.version, UserBody::from(&user)))
}

/// The token endpoint's request (RFC 6749 §4.3 and §6), form-encoded.
///
/// It only describes the form: [`token`] reads the pairs itself, to refuse a parameter
/// sent twice and to answer every refusal in RFC 6749's words.
#[derive(Debug, Deserialize, ToSchema)]
#[expect(dead_code, reason = "describes the form for OpenAPI; the handler reads the pairs")]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    #[schema(example = "password")]
    pub grant_type: String,
    /// The email, for `password`.
    pub username: Option<String>,
    /// For `password`.
    #[schema(format = "password")]
    pub password: Option<String>,
    /// For `refresh_token`.
    pub refresh_token: Option<String>,
}

/// A successful token answer (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange it at this endpoint (`grant_type=refresh_token`) for new tokens; it then
    /// stops working.
    pub refresh_token: String,
}

/// A token endpoint error (RFC 6749 §5.2).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant` or `unsupported_grant_type`.
    pub error: String,
    pub error_description: String,
}

/// The client's address, when the server was started with connection info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The peer's address, not X-Forwarded-For: a header anyone can set would let an
        // attacker pick a fresh address for every guess.
        Ok(ClientAddress(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())))
    }
}

/// How the token endpoint fails: an RFC 6749 error, or any other (a 429, a 5xx).
enum TokenFailure {
    OAuth { error: &'static str, description: String },
    Api(ApiError),
}

impl From<ApiError> for TokenFailure {
    fn from(error: ApiError) -> Self {
        TokenFailure::Api(error)
    }
}

fn oauth(error: &'static str, description: impl Into<String>) -> TokenFailure {
    TokenFailure::OAuth { error, description: description.into() }
}

/// `POST /oauth/token`: logs in with a password, or exchanges a refresh token.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "identity",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant or unsupported_grant_type", body = OAuthError),
        (status = 429, description = "Too many failed logins; see Retry-After", body = Problem,
            content_type = "application/problem+json", headers(("Retry-After" = u64))),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    context: RequestContext,
    ClientAddress(address): ClientAddress,
    request: Request,
) -> Response {
    let mut response = match grant(&state, &context, address, request).await {
        Ok(tokens) => Json(tokens).into_response(),
        Err(TokenFailure::OAuth { error, description }) => {
            (StatusCode::BAD_REQUEST, Json(OAuthError { error: error.to_owned(), error_description: description }))
                .into_response()
        }
        Err(TokenFailure::Api(error)) => error.into_response(),
    };
    // RFC 6749 §5.1: tokens must not be cached, and neither must their refusals.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn grant(
    state: &AppState,
    context: &RequestContext,
    address: Option<IpAddr>,
    request: Request,
) -> Result<TokenResponse, TokenFailure> {
    if !has_media_type(request.headers(), |essence| essence == "application/x-www-form-urlencoded") {
        return Err(oauth("invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    let body = read_body(request, state).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|error| oauth("invalid_request", format!("the form cannot be read: {error}")))?;
    let parameter = |name: &str| -> Result<Option<&str>, TokenFailure> {
        let mut values = pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let first = values.next();
        // RFC 6749 §3.2: a parameter sent twice is an invalid request.
        if values.next().is_some() {
            return Err(oauth("invalid_request", format!("{name} is given more than once")));
        }
        Ok(first.filter(|value| !value.is_empty()))
    };
    let required = |name: &str| -> Result<&str, TokenFailure> {
        parameter(name)?.ok_or_else(|| oauth("invalid_request", format!("{name} is missing")))
    };
    let session = match required("grant_type")? {
        "password" => {
            let (username, password) = (required("username")?, required("password")?);
            log_in(state, context, address, username, password).await?
        }
        "refresh_token" => {
            let refresh = RefreshSession { refresh_token: required("refresh_token")?.to_owned() };
            state.call(&refresh, context.message(None)).await.map_err(|error| refused(error, "the refresh token"))?
        }
        other => {
            return Err(oauth("unsupported_grant_type", format!("grant_type {other:?} is not supported")));
        }
    };
    Ok(TokenResponse {
        access_token: state.tokens.issue(session.user_id, session.role)?,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.time_to_live().as_secs(),
        refresh_token: session.refresh_token,
    })
}

async fn log_in(
    state: &AppState,
    context: &RequestContext,
    address: Option<IpAddr>,
    username: &str,
    password: &str,
) -> Result<Session, TokenFailure> {
    let account = username.trim();
    state.login_limiter.check(account, address).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let credentials = Email::try_from(account.to_owned()).ok().zip(Password::try_from(password.to_owned()).ok());
    let outcome = match credentials {
        // Credentials that cannot be right are a failed login like a wrong password.
        None => Err(oauth("invalid_grant", "the email or password is wrong")),
        Some((email, password)) => state
            .call(&LogIn { email, password }, context.message(None))
            .await
            .map_err(|error| refused(error, "the email or password")),
    };
    match &outcome {
        Ok(_) => state.login_limiter.record_success(account),
        Err(TokenFailure::OAuth { .. }) => state.login_limiter.record_failure(account, address),
        // The service failing is not the client failing to log in.
        Err(TokenFailure::Api(_)) => {}
    }
    outcome
}

/// A refusal of the credentials is `invalid_grant`; anything else (a conflict identity
/// could not resolve, a timeout) keeps its own status and is not a failed login.
fn refused(error: ApiError, what: &str) -> TokenFailure {
    match error {
        ApiError::Unprocessable { .. } | ApiError::NotFound(_) | ApiError::Forbidden(_) => {
            oauth("invalid_grant", format!("{what} is wrong"))
        }
        other => TokenFailure::Api(other),
    }
}

/// `GET /api/users/me`: the profile of the user logged in.
#[utoipa::path(
    get,
    path = "/api/users/me",
    tag = "identity",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = UserBody, headers(("ETag" = String))),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_profile(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    let found = state.call(&GetUser { user_id: user.user_id }, context.message(Some(user.user_id))).await?;
    Ok(with_entity_tag(StatusCode::OK, found.version, UserBody::from(&found)))
}

/// `PATCH /api/users/me`: changes the profile.
#[utoipa::path(
    patch,
    path = "/api/users/me",
    tag = "identity",
    security(("bearer" = [])),
    request_body = ChangeProfileRequest,
    params(("If-Match" = Option<String>, Header, description = "The ETag of the profile read; * or absent: no check")),
    responses(
        (status = 200, description = "The changed profile", body = UserBody, headers(("ETag" = String))),
        (status = 412, description = "The profile changed since it was read", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn change_profile(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    IfMatch(expected_version): IfMatch,
    Json(request): Json<ChangeProfileRequest>,
) -> Result<Response, ApiError> {
    let command = ChangeProfile { user_id: user.user_id, name: request.name, expected_version };
    let changed = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(with_entity_tag(StatusCode::OK, changed.version, UserBody::from(&changed)))
}

/// `POST /api/users/me/addresses`: adds an address.
#[utoipa::path(
    post,
    path = "/api/users/me/addresses",
    tag = "identity",
    security(("bearer" = [])),
    request_body = AddressRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first request did")),
    responses(
        (status = 201, description = "Added", body = AddressBody),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn add_address(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    idempotency: IdempotencyKey,
    Json(request): Json<AddressRequest>,
) -> Result<Response, ApiError> {
    let command = AddAddress {
        user_id: user.user_id,
        address_id: idempotency.command_id(Some(user.user_id)),
        address: request.into(),
    };
    let address = state.call(&command, context.message(Some(user.user_id))).await?;
    let mut response = (StatusCode::CREATED, Json(AddressBody::from(&address))).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/api/users/me/addresses"));
    Ok(response)
}

/// `GET /api/users/me/addresses`: the user's addresses.
#[utoipa::path(
    get,
    path = "/api/users/me/addresses",
    tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, description = "The addresses", body = AddressList))
)]
pub(crate) async fn list_addresses(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
) -> Result<Json<AddressList>, ApiError> {
    let found = state.call(&GetUser { user_id: user.user_id }, context.message(Some(user.user_id))).await?;
    Ok(Json(AddressList { items: found.addresses.iter().map(AddressBody::from).collect(), next_cursor: None }))
}

/// `DELETE /api/users/me/addresses/{id}`: removes an address.
#[utoipa::path(
    delete,
    path = "/api/users/me/addresses/{id}",
    tag = "identity",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such address", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn remove_address(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(address_id): PathId,
) -> Result<StatusCode, ApiError> {
    let command = RemoveAddress { user_id: user.user_id, address_id };
    state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(StatusCode::NO_CONTENT)
}
