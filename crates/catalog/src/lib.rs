//! The catalog service: products, prices and categories, and the listing shoppers browse.
//!
//! - [`domain`]: the `Product` aggregate, pure.
//! - [`handlers`]: the operations of `contracts::catalog`, on the catalog's own store.
//! - [`listing`]: the listing view with its sort and search indexes, fed by that store.
//! - [`stock`]: the consumer that records inventory's stock levels for the listing.
//! - [`ratings`]: the consumer that records reviews' product ratings for the listing.

pub mod domain;
pub mod handlers;
pub mod listing;
pub mod ratings;
pub mod stock;

use std::sync::Arc;

use contracts::catalog::{
    CreateProduct, DiscontinueProduct, GetProduct, GetProducts, ListProducts, SERVICE, UpdateProduct,
};
use runtime::{LiveView, OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::Catalog;
use crate::listing::Listing;

/// The listing view's name, in logs.
pub const LISTING_VIEW: &str = "catalog.listing";

/// Starts the catalog: replays the listing, consumes inventory's stock levels and reviews'
/// ratings, and serves every catalog operation on the bus.
///
/// Inventory's and reviews' events must be published on the bus first
/// (`publish_events("inventory", …)`), since the in-process bus refuses a consumer whose
/// source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let (listing, follower) = LiveView::<Listing>::start(LISTING_VIEW, context.store.clone()).await?;
    let stock = match stock::start(&*context.bus, context.store.clone(), context.consumers.clone()).await {
        Ok(stock) => stock,
        Err(error) => {
            follower.stop().await;
            return Err(error.into());
        }
    };
    let ratings = match ratings::start(&*context.bus, context.store.clone(), context.consumers.clone()).await {
        Ok(ratings) => ratings,
        Err(error) => {
            stock.stop().await;
            follower.stop().await;
            return Err(error.into());
        }
    };
    let catalog = Arc::new(Catalog::new(context.store.clone(), listing));
    let router = router(catalog).with_admin(&context);
    let description = "products, prices and categories, and the listing shoppers browse";
    RunningService::new()
        .with_consumer(stock)
        .with_consumer(ratings)
        .with_task(follower)
        .serving(router, &*context.bus, SERVICE, description)
        .await
}

fn router(catalog: Arc<Catalog>) -> OperationRouter {
    let (create, update, discontinue) = (catalog.clone(), catalog.clone(), catalog.clone());
    let (get, get_many, list) = (catalog.clone(), catalog.clone(), catalog);
    OperationRouter::new()
        .route::<CreateProduct, _, _>(move |request, context| create.clone().create_product(request, context))
        .route::<UpdateProduct, _, _>(move |request, context| update.clone().update_product(request, context))
        .route::<DiscontinueProduct, _, _>(move |request, context| {
            discontinue.clone().discontinue_product(request, context)
        })
        .route::<GetProduct, _, _>(move |request, context| get.clone().get_product(request, context))
        .route::<GetProducts, _, _>(move |request, context| get_many.clone().get_products(request, context))
        .route::<ListProducts, _, _>(move |request, context| list.clone().list_products(request, context))
}
