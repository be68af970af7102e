//! The recommendations routes of SPEC §4: what goes with a product (anyone), and what a
//! logged-in user might like.
//!
//! Recommendations are one ranked answer, not a list to page through: they take `limit`
//! (1 to 100, default 20) and answer `{items, next_cursor}` with `next_cursor` always null,
//! the shape of every list.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use contracts::recommendations::{GetBoughtTogether, GetForYou, Recommendation, RecommendationReason, Recommendations};
use contracts::values::PageRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{Json, PathId, Query, parse_query_parameter};
use crate::routes::MoneyBody;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/products/{id}/recommendations", get(product_recommendations))
        .route("/api/recommendations", get(recommendations_for_you))
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(product_recommendations, recommendations_for_you),
    tags((name = "recommendations", description = "Bought together, and for you"))
)]
pub(crate) struct Api;

/// Why a product is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RecommendationReason)]
pub enum RecommendationReasonBody {
    /// Confirmed orders held it together with the product (or with one the user bought);
    /// the score counts those orders.
    BoughtTogether,
    /// A bestseller of the same category; the score is units sold.
    PopularInCategory,
    /// A bestseller of the shop; the score is units sold.
    Popular,
}

impl From<RecommendationReason> for RecommendationReasonBody {
    fn from(reason: RecommendationReason) -> Self {
        match reason {
            RecommendationReason::BoughtTogether => RecommendationReasonBody::BoughtTogether,
            RecommendationReason::PopularInCategory => RecommendationReasonBody::PopularInCategory,
            RecommendationReason::Popular => RecommendationReasonBody::Popular,
        }
    }
}

/// A recommended product. Name, price and category are null while recommendations has not
/// yet heard of the product from the catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Recommendation)]
pub struct RecommendationBody {
    pub product_id: Uuid,
    pub name: Option<String>,
    pub price: Option<MoneyBody>,
    pub category: Option<String>,
    pub score: u64,
    pub reason: RecommendationReasonBody,
}

impl From<&Recommendation> for RecommendationBody {
    fn from(item: &Recommendation) -> Self {
        RecommendationBody {
            product_id: item.product_id,
            name: item.name.clone(),
            price: item.price.map(MoneyBody::from),
            category: item.category.clone(),
            score: item.score,
            reason: item.reason.into(),
        }
    }
}

/// Recommendations, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendationPage {
    pub items: Vec<RecommendationBody>,
    /// Always null: recommendations are one page.
    pub next_cursor: Option<String>,
}

impl From<&Recommendations> for RecommendationPage {
    fn from(recommendations: &Recommendations) -> Self {
        RecommendationPage {
            items: recommendations.items.iter().map(RecommendationBody::from).collect(),
            next_cursor: None,
        }
    }
}

/// How many recommendations.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationParameters {
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

impl RecommendationParameters {
    fn limit(&self) -> Result<u32, ApiError> {
        let mut errors = Vec::new();
        let limit =
            parse_query_parameter::<u32>("limit", self.limit.as_deref(), "a whole number from 1 to 100", &mut errors);
        match limit {
            _ if !errors.is_empty() => Err(ApiError::invalid_fields(errors)),
            Some(limit) if (1..=PageRequest::MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(_) => {
                Err(ApiError::invalid_fields(vec![FieldError::new("limit", "must be a whole number from 1 to 100")]))
            }
            None => Ok(PageRequest::DEFAULT_LIMIT),
        }
    }
}

/// `GET /api/products/{id}/recommendations`: products bought together with this one, then
/// bestsellers of its category.
#[utoipa::path(
    get,
    path = "/api/products/{id}/recommendations",
    tag = "recommendations",
    params(("id" = Uuid, Path, description = "The product"), RecommendationParameters),
    responses(
        (status = 200, description = "Recommendations, best first", body = RecommendationPage),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn product_recommendations(
    State(state): State<AppState>,
    context: RequestContext,
    PathId(product_id): PathId,
    Query(parameters): Query<RecommendationParameters>,
) -> Result<Json<RecommendationPage>, ApiError> {
    let query = GetBoughtTogether { product_id, limit: parameters.limit()? };
    let recommendations = state.call(&query, context.message(None)).await?;
    Ok(Json(RecommendationPage::from(&recommendations)))
}

/// `GET /api/recommendations`: for the user logged in, from what they bought; never what
/// they bought already.
#[utoipa::path(
    get,
    path = "/api/recommendations",
    tag = "recommendations",
    security(("bearer" = [])),
    params(RecommendationParameters),
    responses(
        (status = 200, description = "Recommendations, best first", body = RecommendationPage),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn recommendations_for_you(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    Query(parameters): Query<RecommendationParameters>,
) -> Result<Json<RecommendationPage>, ApiError> {
    let query = GetForYou { user_id: user.user_id, limit: parameters.limit()? };
    let recommendations = state.call(&query, context.message(Some(user.user_id))).await?;
    Ok(Json(RecommendationPage::from(&recommendations)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(value: Option<&str>) -> Result<u32, Vec<String>> {
        let parameters = RecommendationParameters { limit: value.map(str::to_owned) };
        parameters.limit().map_err(|error| match error {
            ApiError::Unprocessable { errors, .. } => errors.into_iter().map(|error| error.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        })
    }

    #[test]
    fn the_limit_defaults_to_twenty_and_stays_within_one_to_a_hundred() {
        assert_eq!(limit(None), Ok(20));
        assert_eq!(limit(Some(" 7 ")), Ok(7));
        assert_eq!(limit(Some("100")), Ok(100));
        for bad in ["0", "101", "ten", "-1"] {
            assert_eq!(limit(Some(bad)), Err(vec!["limit".to_owned()]), "{bad}");
        }
    }
}
