//! The reviews routes of SPEC §4: anyone reads a product's reviews; a logged-in user posts
//! one per product; its author or an administrator removes it.
//!
//! Reviews are public, so a user who may not remove a review is told so (403) rather than
//! told it does not exist. The review id of a post comes from the `Idempotency-Key` when
//! there is one, so a retried post answers the review it posted.

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use contracts::reviews::{
    GetReview, ListReviews, PostReview, ProductReviews, Rating, RemoveReview, Review, ReviewText, ReviewTitle,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, Problem};
use crate::extract::{IdempotencyKey, IfMatch, Json, PathId, Query};
use crate::routes::orders::viewer;
use crate::routes::{created, page_request, with_entity_tag};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/products/{id}/reviews", get(list_reviews).post(post_review))
        .route("/api/products/{id}/reviews/{review_id}", delete(remove_review).get(get_review))
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(post_review, list_reviews, get_review, remove_review),
    tags((name = "reviews", description = "Product reviews: one per user and product, with a verified-purchase badge"))
)]
pub(crate) struct Api;

/// A new review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostReviewRequest {
    /// Stars, a whole number from 1 to 5.
    #[schema(value_type = u8, minimum = 1, maximum = 5, example = 4)]
    pub rating: Rating,
    #[schema(value_type = String, min_length = 1, max_length = 200, example = "Keeps coffee hot")]
    pub title: ReviewTitle,
    /// May be empty; line breaks are kept.
    #[schema(value_type = String, max_length = 5000, example = "Sturdy, and the handle stays cool.")]
    pub body: ReviewText,
}

/// A review as anyone sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Review)]
pub struct ReviewResponse {
    pub id: Uuid,
    pub product_id: Uuid,
    /// The author.
    pub user_id: Uuid,
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    pub title: String,
    pub body: String,
    /// The author has received the product: an order of theirs holding it was delivered
    /// (before or after the review was written).
    pub verified_purchase: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&Review> for ReviewResponse {
    fn from(review: &Review) -> Self {
        ReviewResponse {
            id: review.id,
            product_id: review.product_id,
            user_id: review.user_id,
            rating: review.rating.get(),
            title: review.title.to_string(),
            body: review.body.to_string(),
            verified_purchase: review.verified_purchase,
            created_at: review.created_at,
        }
    }
}

/// One page of a product's reviews, newest first, and what all of them add up to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewResponse>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
    /// The mean rating of all the product's reviews, to one decimal; 0 without reviews.
    pub rating: f64,
    pub review_count: u64,
}

impl From<&ProductReviews> for ReviewPage {
    fn from(reviews: &ProductReviews) -> Self {
        ReviewPage {
            items: reviews.items.iter().map(ReviewResponse::from).collect(),
            next_cursor: reviews.next_cursor.clone(),
            rating: reviews.rating,
            review_count: reviews.review_count,
        }
    }
}

/// Which page of reviews.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewListParameters {
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The product and the review a route names (`{id}` and `{review_id}`), each a UUID or a
/// 422 naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReviewPath {
    product_id: Uuid,
    review_id: Uuid,
}

impl<S: Send + Sync> FromRequestParts<S> for ReviewPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let parameters = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_field("id", "a path parameter is not valid UTF-8"))?;
        let parameter = |name: &str| -> Result<Uuid, ApiError> {
            let (_, value) = parameters
                .iter()
                .find(|(key, _)| *key == name)
                .ok_or_else(|| ApiError::internal(format!("a route without its {name} parameter")))?;
            value.parse().map_err(|_| ApiError::invalid_field(name, format!("{value:?} is not a UUID")))
        };
        Ok(ReviewPath { product_id: parameter("id")?, review_id: parameter("review_id")? })
    }
}

/// `POST /api/products/{id}/reviews`: reviews a product, once per user.
#[utoipa::path(
    post,
    path = "/api/products/{id}/reviews",
    tag = "reviews",
    security(("bearer" = [])),
    request_body = PostReviewRequest,
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first request did"),
    ),
    responses(
        (status = 201, description = "Posted", body = ReviewResponse, headers(("Location" = String), ("ETag" = String))),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user has already reviewed this product", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (a rating outside 1 to 5, an empty title)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn post_review(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    idempotency: IdempotencyKey,
    PathId(product_id): PathId,
    Json(request): Json<PostReviewRequest>,
) -> Result<Response, ApiError> {
    let command = PostReview {
        review_id: idempotency.command_id(Some(user.user_id)),
        product_id,
        user_id: user.user_id,
        rating: request.rating,
        title: request.title,
        body: request.body,
    };
    let review = state.call(&command, context.message(Some(user.user_id))).await?;
    let location = format!("/api/products/{product_id}/reviews/{}", review.id);
    Ok(created(&location, review.version, ReviewResponse::from(&review)))
}

/// `GET /api/products/{id}/reviews`: a product's reviews, newest first.
#[utoipa::path(
    get,
    path = "/api/products/{id}/reviews",
    tag = "reviews",
    params(("id" = Uuid, Path, description = "The product"), ReviewListParameters),
    responses(
        (status = 200, description = "One page of reviews", body = ReviewPage),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_reviews(
    State(state): State<AppState>,
    context: RequestContext,
    PathId(product_id): PathId,
    Query(parameters): Query<ReviewListParameters>,
) -> Result<Json<ReviewPage>, ApiError> {
    let mut errors = Vec::new();
    let page = page_request(parameters.limit.as_deref(), parameters.cursor.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let reviews = state.call(&ListReviews { product_id, page }, context.message(None)).await?;
    Ok(Json(ReviewPage::from(&reviews)))
}

/// `GET /api/products/{id}/reviews/{review_id}`: one review.
#[utoipa::path(
    get,
    path = "/api/products/{id}/reviews/{review_id}",
    tag = "reviews",
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("review_id" = Uuid, Path, description = "The review"),
    ),
    responses(
        (status = 200, description = "The review", body = ReviewResponse, headers(("ETag" = String))),
        (status = 404, description = "No such review of this product, or it was removed", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_review(
    State(state): State<AppState>,
    context: RequestContext,
    path: ReviewPath,
) -> Result<Response, ApiError> {
    let query = GetReview { product_id: path.product_id, review_id: path.review_id };
    let review = state.call(&query, context.message(None)).await?;
    Ok(with_entity_tag(StatusCode::OK, review.version, ReviewResponse::from(&review)))
}

/// `DELETE /api/products/{id}/reviews/{review_id}`: removes a review (its author or an
/// administrator). Once removed, the author may post a new review of the product.
#[utoipa::path(
    delete,
    path = "/api/products/{id}/reviews/{review_id}",
    tag = "reviews",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("review_id" = Uuid, Path, description = "The review"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the review read; * or absent: no check"),
    ),
    responses(
        (status = 204, description = "Removed (or removed already)"),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the author nor an administrator", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such review of this product", body = Problem,
            content_type = "application/problem+json"),
        (status = 412, description = "The review changed since it was read", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn remove_review(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    path: ReviewPath,
    IfMatch(expected_version): IfMatch,
) -> Result<StatusCode, ApiError> {
    let command = RemoveReview {
        product_id: path.product_id,
        review_id: path.review_id,
        viewer: viewer(&user),
        expected_version,
    };
    state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::response::IntoResponse;
    use tower::ServiceExt;

    use super::*;
    use serde_json::json;

    /// What a route taking a [`ReviewPath`] answers for `uri`: the ids, or the problem's
    /// status and bad fields.
    async fn extract(uri: &str) -> Result<(Uuid, Uuid), (StatusCode, serde_json::Value)> {
        let app = Router::new().route(
            "/api/products/{id}/reviews/{review_id}",
            get(|path: ReviewPath| async move { format!("{} {}", path.product_id, path.review_id) }),
        );
        let request = Request::builder().uri(uri).body(Body::empty()).expect("a request");
        let response = app.oneshot(request).await.expect("answers").into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        if status != StatusCode::OK {
            return Err((status, serde_json::from_slice(&body).expect("a problem")));
        }
        let text = String::from_utf8(body.to_vec()).expect("text");
        let (product, review) = text.split_once(' ').expect("two ids");
        Ok((product.parse().expect("a uuid"), review.parse().expect("a uuid")))
    }

    #[tokio::test]
    async fn both_ids_of_a_review_path_are_read_and_a_bad_one_is_named() {
        let (product, review) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(extract(&format!("/api/products/{product}/reviews/{review}")).await, Ok((product, review)));
        let (status, problem) = extract(&format!("/api/products/nope/reviews/{review}")).await.expect_err("refused");
        assert_eq!((status, &problem["errors"][0]["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("id")));
        let (status, problem) = extract(&format!("/api/products/{product}/reviews/42")).await.expect_err("refused");
        assert_eq!((status, &problem["errors"][0]["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("review_id")));
    }

    #[test]
    fn a_review_answers_the_fields_of_the_spec() {
        let review = Review {
            id: Uuid::now_v7(),
            product_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            rating: Rating::new(4).expect("valid"),
            title: ReviewTitle::try_from("Good".to_owned()).expect("valid"),
            body: ReviewText::try_from("Fine.".to_owned()).expect("valid"),
            verified_purchase: true,
            created_at: Utc::now(),
            version: 3,
        };
        let body = serde_json::to_value(ReviewResponse::from(&review)).expect("encodes");
        let mut fields: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["body", "created_at", "id", "product_id", "rating", "title", "user_id", "verified_purchase"]
        );
        assert_eq!(body["rating"], 4);
    }
}
