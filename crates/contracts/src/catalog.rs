//! catalog: products, prices and categories; and the listing that shoppers browse, which
//! also shows stock (from inventory) and ratings (from reviews).

use chrono::{DateTime, Utc};
use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::{Category, Description, Money, Page, PageRequest, Price, ProductName, Sku};

pub const SERVICE: &str = "catalog";

/// A product as shoppers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    /// Units that can be ordered now (inventory's `available`).
    pub available: u64,
    /// Mean review rating, 0 when there is no review.
    pub rating: f64,
    pub review_count: u64,
    pub discontinued: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The version of the product's stream, for `ETag`.
    pub version: u64,
}

/// Creates a product. `product_id` is chosen by the caller (derived from an idempotency
/// key, or new): creating it again with the same content answers the same product.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateProduct {
    pub product_id: Uuid,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Price,
    pub category: Category,
}
operation!(CreateProduct, SERVICE, Product);

/// Changes the fields given; `expected_version` (from `If-Match`) must match if present.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateProduct {
    pub product_id: Uuid,
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price: Option<Price>,
    pub category: Option<Category>,
    pub expected_version: Option<u64>,
}
operation!(UpdateProduct, SERVICE, Product);

/// Takes a product off sale. Its history stays; it is no longer listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscontinueProduct {
    pub product_id: Uuid,
    pub expected_version: Option<u64>,
}
operation!(DiscontinueProduct, SERVICE, Product);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetProduct {
    pub product_id: Uuid,
}
operation!(GetProduct, SERVICE, Product);

/// Prices and names of several products at once (for carts and orders). Unknown ids are
/// left out of the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetProducts {
    pub product_ids: Vec<Uuid>,
}
operation!(GetProducts, SERVICE, Vec<Product>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    /// Newest first (the default).
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    /// Best rated first.
    Rating,
}

/// The listing: discontinued products are left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListProducts {
    /// Full-text search on name and description: every word must match.
    pub query: Option<String>,
    pub category: Option<Category>,
    /// Minor units, inclusive.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: ProductSort,
    pub page: PageRequest,
}
operation!(ListProducts, SERVICE, Page<Product>);

/// The events of a product's stream (`product-<id>`), of a sku claim (`sku-<hash>`), and
/// of what catalog learns from other services (`listing-<product id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CatalogEvent {
    ProductCreated {
        product_id: Uuid,
        sku: Sku,
        name: ProductName,
        description: Description,
        price: Money,
        category: Category,
    },
    /// Name, description or category changed; each field holds its new value.
    ProductUpdated {
        product_id: Uuid,
        name: ProductName,
        description: Description,
        category: Category,
    },
    PriceChanged {
        product_id: Uuid,
        price: Money,
    },
    ProductDiscontinued {
        product_id: Uuid,
    },
    /// A sku was taken by a product: the first event of its claim stream.
    SkuClaimed {
        sku: Sku,
        product_id: Uuid,
    },
    /// Inventory reported a new available quantity.
    AvailabilityChanged {
        product_id: Uuid,
        available: u64,
    },
    /// Reviews reported a new rating.
    RatingChanged {
        product_id: Uuid,
        rating: f64,
        review_count: u64,
    },
}

impl DomainEvent for CatalogEvent {}
