//! Access tokens: HS256 JWTs the gateway signs at login and checks on every request, and
//! the extractors [`CurrentUser`] and [`Admin`] that routes use to say who may call them.
//!
//! The algorithm is pinned: a token is checked as HS256 whatever its header claims, so a
//! token signed with another algorithm, or with none, is refused (401) rather than
//! trusted. Refresh tokens are identity's business; the gateway only passes them on.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use contracts::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Who issues the tokens, and who they are for.
pub const ISSUER: &str = "eventshop";

/// Clock difference tolerated between the gateways that sign and check a token.
const LEEWAY_SECONDS: u64 = 5;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    pub role: Role,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    pub iss: String,
    /// The token's own id, for the logs.
    pub jti: Uuid,
}

/// The keys that sign and check access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    time_to_live: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("time_to_live", &self.time_to_live).finish_non_exhaustive()
    }
}

/// Why a token was refused; the 401's detail.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidToken(String);

impl TokenKeys {
    pub fn new(secret: &[u8], time_to_live: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            time_to_live,
        }
    }

    pub fn time_to_live(&self) -> Duration {
        self.time_to_live
    }

    /// A new access token for `user_id` with `role`.
    pub fn issue(&self, user_id: Uuid, role: Role) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(self.time_to_live.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id,
            role,
            iat: now,
            exp: now.saturating_add(lifetime),
            iss: ISSUER.to_owned(),
            jti: Uuid::now_v7(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| ApiError::internal(format!("cannot sign an access token: {error}")))
    }

    /// The claims of `token` if its algorithm, signature, issuer and expiry are right.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(
            |error| {
                InvalidToken(
                    match error.kind() {
                        ErrorKind::ExpiredSignature => "the access token has expired",
                        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                            "the access token is not signed with HS256"
                        }
                        ErrorKind::InvalidSignature => "the access token's signature is wrong",
                        ErrorKind::InvalidIssuer => "the access token was not issued by eventshop",
                        ErrorKind::MissingRequiredClaim(_) => "the access token lacks a required claim",
                        _ => "the access token is malformed",
                    }
                    .to_owned(),
                )
            },
        )
    }
}

/// The user a request is made for, from its bearer token. Missing or bad → 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser {
    pub user_id: Uuid,
    pub role: Role,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let claims = state
            .tokens
            .verify(token)
            .map_err(|error| ApiError::Unauthorized { detail: error.to_string(), token_sent: true })?;
        let user = CurrentUser { user_id: claims.sub, role: claims.role };
        // The context middleware ran before routing; the acting user is known only now.
        tracing::Span::current().record("user_id", tracing::field::display(user.user_id));
        Ok(user)
    }
}

/// An administrator. Not logged in → 401; logged in with another role → 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin(pub CurrentUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.role == Role::Admin {
            Ok(Admin(user))
        } else {
            Err(ApiError::Forbidden("this needs the admin role".to_owned()))
        }
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let missing = |detail: &str| ApiError::Unauthorized { detail: detail.to_owned(), token_sent: false };
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| missing("this needs a bearer token (Authorization: Bearer <token>)"))?;
    let value = value.to_str().map_err(|_| missing("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(missing("the Authorization header must be \"Bearer <token>\"")),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, Duration::from_secs(900))
    }

    fn claims(expires_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: Uuid::now_v7(),
            role: Role::Customer,
            iat: now,
            exp: now + expires_in,
            iss: ISSUER.to_owned(),
            jti: Uuid::now_v7(),
        }
    }

    fn sign(algorithm: Algorithm, claims: &Claims, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).expect("signs")
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let keys = keys();
        let user = Uuid::now_v7();
        let token = keys.issue(user, Role::Admin).expect("signs");
        let claims = keys.verify(&token).expect("valid");
        assert_eq!((claims.sub, claims.role, claims.iss.as_str()), (user, Role::Admin, ISSUER));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = sign(Algorithm::HS256, &claims(-120), SECRET);
        let error = keys().verify(&token).expect_err("expired");
        assert!(error.to_string().contains("expired"), "{error}");
    }

    #[test]
    fn another_algorithm_is_refused() {
        let token = sign(Algorithm::HS512, &claims(600), SECRET);
        let error = keys().verify(&token).expect_err("HS512");
        assert!(error.to_string().contains("HS256"), "{error}");
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(600)).expect("encodes"));
        assert!(keys().verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let token = sign(Algorithm::HS256, &claims(600), b"another-secret-another-secret-!!");
        let error = keys().verify(&token).expect_err("wrong key");
        assert!(error.to_string().contains("signature"), "{error}");
    }

    #[test]
    fn a_token_from_another_issuer_is_refused() {
        let mut foreign = claims(600);
        foreign.iss = "someone-else".to_owned();
        assert!(keys().verify(&sign(Algorithm::HS256, &foreign, SECRET)).is_err());
    }
}
