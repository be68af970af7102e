//! Catalog's routes: the product listing and details anyone may read, and the product
//! changes only an administrator may make.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use contracts::catalog::{
    CreateProduct, DiscontinueProduct, GetProduct, ListProducts, Product, ProductSort, UpdateProduct,
};
use contracts::values::{Category, Description, Price, ProductName, Sku};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Admin;
use crate::context::RequestContext;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{IdempotencyKey, IfMatch, Json, PathId, Query, parse_query_parameter};
use crate::routes::{MoneyBody, created, page_request, with_entity_tag};
use crate::state::AppState;

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Letters, digits, `-` and `_`; stored upper-cased. Unique.
    #[schema(value_type = String, example = "TSHIRT-RED-M", max_length = 64)]
    pub sku: Sku,
    #[schema(value_type = String, example = "Red T-shirt", min_length = 1, max_length = 200)]
    pub name: ProductName,
    #[schema(value_type = String, max_length = 5000)]
    pub description: Description,
    /// Zero or more.
    #[schema(value_type = MoneyBody)]
    pub price: Price,
    /// Stored lower-cased.
    #[schema(value_type = String, example = "shirts", max_length = 64)]
    pub category: Category,
}

/// The product fields to change; those left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub name: Option<ProductName>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub description: Option<Description>,
    #[schema(value_type = Option<MoneyBody>)]
    #[serde(default)]
    pub price: Option<Price>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub category: Option<Category>,
}

/// A product as shoppers see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Product)]
pub struct ProductBody {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: MoneyBody,
    pub category: String,
    /// Units that can be ordered now.
    pub available: u64,
    /// Mean review rating, 0 when there is no review.
    pub rating: f64,
    pub review_count: u64,
    pub discontinued: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Product> for ProductBody {
    fn from(product: &Product) -> Self {
        ProductBody {
            id: product.id,
            sku: product.sku.to_string(),
            name: product.name.to_string(),
            description: product.description.to_string(),
            price: product.price.into(),
            category: product.category.to_string(),
            available: product.available,
            rating: product.rating,
            review_count: product.review_count,
            discontinued: product.discontinued,
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

/// One page of the listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductBody>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The listing's filters. Read as text and parsed here, so that a bad one is named.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListParameters {
    /// Full-text search on name and description: every word must match.
    pub q: Option<String>,
    pub category: Option<String>,
    /// Minor units, inclusive.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub min_price: Option<String>,
    /// Minor units, inclusive.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub max_price: Option<String>,
    /// `newest` (the default), `price_asc`, `price_desc` or `rating`.
    #[param(value_type = Option<String>, pattern = "^(newest|price_asc|price_desc|rating)$")]
    pub sort: Option<String>,
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ProductListParameters {
    fn into_request(self) -> Result<ListProducts, ApiError> {
        let mut errors = Vec::new();
        let query = self.q.map(|query| query.trim().to_owned()).filter(|query| !query.is_empty());
        if query.as_ref().is_some_and(|query| query.chars().count() > 200) {
            errors.push(FieldError::new("q", "must have at most 200 characters"));
        }
        let category = match self.category.filter(|category| !category.trim().is_empty()) {
            None => None,
            Some(category) => Category::try_from(category)
                .map_err(|error| errors.push(FieldError::new("category", error.to_string())))
                .ok(),
        };
        let mut price = |name: &str, value: Option<String>| {
            let price = parse_query_parameter::<i64>(name, value.as_deref(), "a whole number of cents", &mut errors)?;
            if price < 0 {
                errors.push(FieldError::new(name, "must not be negative"));
                return None;
            }
            Some(price)
        };
        let (min_price, max_price) = (price("min_price", self.min_price), price("max_price", self.max_price));
        if matches!((min_price, max_price), (Some(min), Some(max)) if min > max) {
            errors.push(FieldError::new("max_price", "must not be below min_price"));
        }
        let sort = match self.sort.as_deref().map(str::trim) {
            None | Some("") | Some("newest") => ProductSort::Newest,
            Some("price_asc") => ProductSort::PriceAsc,
            Some("price_desc") => ProductSort::PriceDesc,
            Some("rating") => ProductSort::Rating,
            Some(_) => {
                errors.push(FieldError::new("sort", "must be one of newest, price_asc, price_desc, rating"));
                ProductSort::Newest
            }
        };
        let page = page_request(self.limit.as_deref(), self.cursor.as_deref(), &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::invalid_fields(errors));
        }
        Ok(ListProducts { query, category, min_price, max_price, sort, page })
    }
}

/// `GET /api/products`: the listing; discontinued products are left out.
#[utoipa::path(
    get,
    path = "/api/products",
    tag = "catalog",
    params(ProductListParameters),
    responses(
        (status = 200, description = "One page of products", body = ProductPage),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_products(
    State(state): State<AppState>,
    context: RequestContext,
    Query(parameters): Query<ProductListParameters>,
) -> Result<Json<ProductPage>, ApiError> {
    let request = parameters.into_request()?;
    let page = state.call(&request, context.message(None)).await?;
    Ok(Json(ProductPage { items: page.items.iter().map(ProductBody::from).collect(), next_cursor: page.next_cursor }))
}

/// `GET /api/products/{id}`: a product, with its stock and rating.
#[utoipa::path(
    get,
    path = "/api/products/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "The product")),
    responses(
        (status = 200, description = "The product", body = ProductBody, headers(("ETag" = String))),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_product(
    State(state): State<AppState>,
    context: RequestContext,
    PathId(product_id): PathId,
) -> Result<Response, ApiError> {
    let product = state.call(&GetProduct { product_id }, context.message(None)).await?;
    Ok(with_entity_tag(StatusCode::OK, product.version, ProductBody::from(&product)))
}

/// `POST /api/products`: creates a product (admin).
#[utoipa::path(
    post,
    path = "/api/products",
    tag = "catalog",
    security(("bearer" = [])),
    request_body = CreateProductRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first request did")),
    responses(
        (status = 201, description = "Created", body = ProductBody,
            headers(("Location" = String), ("ETag" = String))),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The sku is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_product(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    idempotency: IdempotencyKey,
    Json(request): Json<CreateProductRequest>,
) -> Result<Response, ApiError> {
    let command = CreateProduct {
        product_id: idempotency.command_id(Some(admin.user_id)),
        sku: request.sku,
        name: request.name,
        description: request.description,
        price: request.price,
        category: request.category,
    };
    let product = state.call(&command, context.message(Some(admin.user_id))).await?;
    Ok(created(&format!("/api/products/{}", product.id), product.version, ProductBody::from(&product)))
}

/// `PATCH /api/products/{id}`: changes a product (admin).
#[utoipa::path(
    patch,
    path = "/api/products/{id}",
    tag = "catalog",
    security(("bearer" = [])),
    request_body = UpdateProductRequest,
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the product read; * or absent: no check"),
    ),
    responses(
        (status = 200, description = "The changed product", body = ProductBody, headers(("ETag" = String))),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The product changed since it was read", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn update_product(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    PathId(product_id): PathId,
    IfMatch(expected_version): IfMatch,
    Json(request): Json<UpdateProductRequest>,
) -> Result<Response, ApiError> {
    let command = UpdateProduct {
        product_id,
        name: request.name,
        description: request.description,
        price: request.price,
        category: request.category,
        expected_version,
    };
    let product = state.call(&command, context.message(Some(admin.user_id))).await?;
    Ok(with_entity_tag(StatusCode::OK, product.version, ProductBody::from(&product)))
}

/// `DELETE /api/products/{id}`: discontinues a product (admin). Its history stays; it
/// leaves the listing. Answers 204: the product is gone from the shop's point of view.
#[utoipa::path(
    delete,
    path = "/api/products/{id}",
    tag = "catalog",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the product read; * or absent: no check"),
    ),
    responses(
        (status = 204, description = "Discontinued"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The product changed since it was read", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn discontinue_product(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    PathId(product_id): PathId,
    IfMatch(expected_version): IfMatch,
) -> Result<StatusCode, ApiError> {
    let command = DiscontinueProduct { product_id, expected_version };
    state.call(&command, context.message(Some(admin.user_id))).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(pairs: &[(&str, &str)]) -> ProductListParameters {
        let query = serde_urlencoded::to_string(pairs).expect("encodes");
        serde_urlencoded::from_str(&query).expect("decodes")
    }

    fn bad_fields(pairs: &[(&str, &str)]) -> Vec<String> {
        match parameters(pairs).into_request() {
            Err(ApiError::Unprocessable { errors, .. }) => errors.into_iter().map(|error| error.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn the_listing_parameters_parse() {
        let request = parameters(&[
            ("q", " red shirt "),
            ("category", "Shirts"),
            ("min_price", "100"),
            ("max_price", "5000"),
            ("sort", "price_desc"),
            ("limit", "5"),
            ("cursor", "abc"),
        ])
        .into_request()
        .expect("valid");
        assert_eq!(request.query.as_deref(), Some("red shirt"));
        assert_eq!(request.category.map(|category| category.to_string()).as_deref(), Some("shirts"));
        assert_eq!((request.min_price, request.max_price), (Some(100), Some(5000)));
        assert_eq!(request.sort, ProductSort::PriceDesc);
        assert_eq!((request.page.limit, request.page.cursor.as_deref()), (5, Some("abc")));
        let defaults = parameters(&[]).into_request().expect("valid");
        assert_eq!((defaults.sort, defaults.page.limit), (ProductSort::Newest, 20));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        assert_eq!(bad_fields(&[("sort", "cheapest")]), ["sort"]);
        assert_eq!(bad_fields(&[("limit", "0")]), ["limit"]);
        assert_eq!(bad_fields(&[("limit", "101")]), ["limit"]);
        assert_eq!(bad_fields(&[("limit", "ten")]), ["limit"]);
        assert_eq!(bad_fields(&[("min_price", "-1"), ("max_price", "1.5")]), ["min_price", "max_price"]);
        assert_eq!(bad_fields(&[("min_price", "10"), ("max_price", "5")]), ["max_price"]);
    }
}
