//! The `Product` aggregate: one stream per product (`product-<id>`), holding every rule about
//! creating, changing and discontinuing it.
//!
//! Pure: no store, no clock, no bus. The sku's uniqueness across products is not a rule of
//! one product, so it lives in the handler, which claims the sku in the same append as the
//! product's first event.

use contracts::catalog::{CatalogEvent, CreateProduct, DiscontinueProduct, UpdateProduct};
use contracts::values::{Category, Description, Money, ProductName, Sku};
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A product's state, folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// `None` until the product is created.
    pub details: Option<ProductDetails>,
    pub discontinued: bool,
    /// The number of events applied: the stream's version, which `decide` compares with a
    /// caller's `expected_version`. Kept in the state, not checked beside it, so that a
    /// command decided again after losing a race checks the version it actually appends at.
    pub version: Version,
}

/// What a created product is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub id: Uuid,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub category: Category,
}

/// What can be asked of a product: the published requests, as they arrive.
#[derive(Debug, Clone)]
pub enum ProductCommand {
    Create(CreateProduct),
    Update(UpdateProduct),
    Discontinue(DiscontinueProduct),
}

/// Why a product refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("product {0} does not exist")]
    NotFound(Uuid),
    #[error("product {0} is discontinued")]
    Discontinued(Uuid),
    #[error("product {product_id} is at version {actual}, not the expected {expected}")]
    VersionMismatch { product_id: Uuid, expected: Version, actual: Version },
}

impl Product {
    fn check_version(&self, product_id: Uuid, expected: Option<Version>) -> Result<(), ProductError> {
        match expected {
            Some(expected) if expected != self.version => {
                Err(ProductError::VersionMismatch { product_id, expected, actual: self.version })
            }
            _ => Ok(()),
        }
    }

    fn decide_update(&self, details: &ProductDetails, update: &UpdateProduct) -> Vec<CatalogEvent> {
        let name = update.name.clone().unwrap_or_else(|| details.name.clone());
        let description = update.description.clone().unwrap_or_else(|| details.description.clone());
        let category = update.category.clone().unwrap_or_else(|| details.category.clone());
        let price = update.price.map_or(details.price, Money::from);
        let mut events = Vec::new();
        if name != details.name || description != details.description || category != details.category {
            events.push(CatalogEvent::ProductUpdated { product_id: details.id, name, description, category });
        }
        if price != details.price {
            events.push(CatalogEvent::PriceChanged { product_id: details.id, price });
        }
        events
    }
}

impl Aggregate for Product {
    const CATEGORY: &'static str = "product";

    type Command = ProductCommand;
    type Event = CatalogEvent;
    type Error = ProductError;

    fn decide(&self, command: &ProductCommand) -> Result<Vec<CatalogEvent>, ProductError> {
        match command {
            ProductCommand::Create(create) => match &self.details {
                // The same product id again is a retry of the same creation: it already happened.
                Some(_) => Ok(Vec::new()),
                None => Ok(vec![CatalogEvent::ProductCreated {
                    product_id: create.product_id,
                    sku: create.sku.clone(),
                    name: create.name.clone(),
                    description: create.description.clone(),
                    price: create.price.money(),
                    category: create.category.clone(),
                }]),
            },
            ProductCommand::Update(update) => {
                let details = self.details.as_ref().ok_or(ProductError::NotFound(update.product_id))?;
                if self.discontinued {
                    return Err(ProductError::Discontinued(details.id));
                }
                let events = self.decide_update(details, update);
                // Nothing to change means the change is already there (a retry, say): answer
                // it whatever the version, as RFC 9110 §13.1.1 allows for a failed If-Match.
                if !events.is_empty() {
                    self.check_version(details.id, update.expected_version)?;
                }
                Ok(events)
            }
            ProductCommand::Discontinue(discontinue) => {
                let details = self.details.as_ref().ok_or(ProductError::NotFound(discontinue.product_id))?;
                // Discontinuing twice changes nothing, and answers as the first time did.
                if self.discontinued {
                    return Ok(Vec::new());
                }
                self.check_version(details.id, discontinue.expected_version)?;
                Ok(vec![CatalogEvent::ProductDiscontinued { product_id: details.id }])
            }
        }
    }

    fn apply(mut self, event: &CatalogEvent) -> Self {
        self.version += 1;
        match event {
            CatalogEvent::ProductCreated { product_id, sku, name, description, price, category } => {
                self.details = Some(ProductDetails {
                    id: *product_id,
                    sku: sku.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    price: *price,
                    category: category.clone(),
                });
            }
            CatalogEvent::ProductUpdated { name, description, category, .. } => {
                if let Some(details) = &mut self.details {
                    details.name = name.clone();
                    details.description = description.clone();
                    details.category = category.clone();
                }
            }
            CatalogEvent::PriceChanged { price, .. } => {
                if let Some(details) = &mut self.details {
                    details.price = *price;
                }
            }
            CatalogEvent::ProductDiscontinued { .. } => self.discontinued = true,
            // Not events of a product stream.
            CatalogEvent::SkuClaimed { .. }
            | CatalogEvent::AvailabilityChanged { .. }
            | CatalogEvent::RatingChanged { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::values::Price;
    use eventshop_core::testing::AggregateTest;

    fn text<T: TryFrom<String>>(value: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        T::try_from(value.to_owned()).expect("valid test value")
    }

    fn price(amount: i64) -> Price {
        Price::try_from(Money::eur(amount)).expect("valid test price")
    }

    fn id() -> Uuid {
        Uuid::from_u128(7)
    }

    fn created() -> CatalogEvent {
        CatalogEvent::ProductCreated {
            product_id: id(),
            sku: text("SHOE-1"),
            name: text("Blue Shoes"),
            description: text("Comfortable"),
            price: Money::eur(4999),
            category: text("shoes"),
        }
    }

    fn create() -> ProductCommand {
        ProductCommand::Create(CreateProduct {
            product_id: id(),
            sku: text("shoe-1"),
            name: text("Blue Shoes"),
            description: text("Comfortable"),
            price: price(4999),
            category: text("Shoes"),
        })
    }

    fn update() -> UpdateProduct {
        UpdateProduct { product_id: id(), ..UpdateProduct::default() }
    }

    #[test]
    fn a_new_product_is_created() {
        AggregateTest::<Product>::given_no_history().when(create()).then_expect_events(vec![created()]);
    }

    #[test]
    fn creating_again_is_a_retry_that_changes_nothing() {
        AggregateTest::<Product>::given([created()]).when(create()).then_expect_events(vec![]);
    }

    #[test]
    fn an_update_emits_details_and_price_separately_and_only_when_they_change() {
        let rename = UpdateProduct { name: Some(text("Red Shoes")), ..update() };
        AggregateTest::<Product>::given([created()]).when(ProductCommand::Update(rename)).then_expect_events(vec![
            CatalogEvent::ProductUpdated {
                product_id: id(),
                name: text("Red Shoes"),
                description: text("Comfortable"),
                category: text("shoes"),
            },
        ]);
        let reprice = UpdateProduct { price: Some(price(3999)), name: Some(text("Blue Shoes")), ..update() };
        AggregateTest::<Product>::given([created()])
            .when(ProductCommand::Update(reprice))
            .then_expect_events(vec![CatalogEvent::PriceChanged { product_id: id(), price: Money::eur(3999) }]);
        let same = UpdateProduct { price: Some(price(4999)), category: Some(text("SHOES")), ..update() };
        AggregateTest::<Product>::given([created()]).when(ProductCommand::Update(same)).then_expect_events(vec![]);
    }

    #[test]
    fn an_update_with_a_stale_version_is_refused() {
        let stale = UpdateProduct { price: Some(price(1)), expected_version: Some(1), ..update() };
        AggregateTest::<Product>::given([
            created(),
            CatalogEvent::PriceChanged { product_id: id(), price: Money::eur(2) },
        ])
        .when(ProductCommand::Update(stale))
        .then_expect_error(ProductError::VersionMismatch { product_id: id(), expected: 1, actual: 2 });
        let current = UpdateProduct { price: Some(price(1)), expected_version: Some(1), ..update() };
        AggregateTest::<Product>::given([created()])
            .when(ProductCommand::Update(current))
            .then_expect_events(vec![CatalogEvent::PriceChanged { product_id: id(), price: Money::eur(1) }]);
    }

    #[test]
    fn absent_and_discontinued_products_cannot_be_updated() {
        AggregateTest::<Product>::given_no_history()
            .when(ProductCommand::Update(update()))
            .then_expect_error(ProductError::NotFound(id()));
        AggregateTest::<Product>::given([created(), CatalogEvent::ProductDiscontinued { product_id: id() }])
            .when(ProductCommand::Update(UpdateProduct { name: Some(text("New")), ..update() }))
            .then_expect_error(ProductError::Discontinued(id()));
    }

    #[test]
    fn discontinuing_is_idempotent_and_checks_the_version_once() {
        let discontinue =
            |expected_version| ProductCommand::Discontinue(DiscontinueProduct { product_id: id(), expected_version });
        let state = AggregateTest::<Product>::given([created()]).when(discontinue(Some(1))).then_state();
        assert!(state.discontinued);
        assert_eq!(state.version, 2);
        AggregateTest::<Product>::given([created(), CatalogEvent::ProductDiscontinued { product_id: id() }])
            .when(discontinue(Some(1)))
            .then_expect_events(vec![]);
        AggregateTest::<Product>::given([created()])
            .when(discontinue(Some(5)))
            .then_expect_error(ProductError::VersionMismatch { product_id: id(), expected: 5, actual: 1 });
        AggregateTest::<Product>::given_no_history()
            .when(discontinue(None))
            .then_expect_error(ProductError::NotFound(id()));
    }
}
