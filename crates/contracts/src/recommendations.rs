//! recommendations: products bought together and popular in a category, learned from
//! confirmed orders and the catalog's products. A read model only: it publishes no events
//! of its own to other services.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::Money;

pub const SERVICE: &str = "recommendations";

/// The most recommendations one answer holds.
pub const MAX_RECOMMENDATIONS: u32 = 100;

/// Why a product is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationReason {
    /// Confirmed orders held it together with the product (or with one the user bought);
    /// the score is how many orders did.
    BoughtTogether,
    /// It sells well in the same category; the score is the units sold.
    PopularInCategory,
    /// It sells well in the whole shop (for a user with nothing better to go on); the
    /// score is the units sold.
    Popular,
}

/// One recommended product. Name, price and category are what the catalog last said of it,
/// absent if recommendations has not heard of the product from the catalog yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub product_id: Uuid,
    pub name: Option<String>,
    pub price: Option<Money>,
    pub category: Option<String>,
    pub score: u64,
    pub reason: RecommendationReason,
}

/// Recommendations, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendations {
    pub items: Vec<Recommendation>,
}

/// What goes with a product: products bought together with it, best first, then the
/// bestsellers of its category; never the product itself nor a discontinued one. NotFound
/// for a product the catalog does not know. `limit`: 1..=[`MAX_RECOMMENDATIONS`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetBoughtTogether {
    pub product_id: Uuid,
    pub limit: u32,
}
operation!(GetBoughtTogether, SERVICE, Recommendations);

/// For a user: what was bought together with what they bought, then the bestsellers of
/// the categories they bought in, then of the shop; never what they bought already.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetForYou {
    pub user_id: Uuid,
    pub limit: u32,
}
operation!(GetForYou, SERVICE, Recommendations);
