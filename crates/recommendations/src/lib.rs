//! The recommendations service: products bought together and popular in a category,
//! learned from confirmed orders and the catalog's products. A read model only (SPEC §1).
//!
//! - [`learned`]: the consumers that record what orders and the catalog said, as
//!   recommendations' own events, once each.
//! - [`view`]: the co-purchase and popularity statistics folded from those events.
//! - [`handlers`]: the queries of `contracts::recommendations`.
//!
//! Rebuilt by replay: what it learned is in its own store, so a restarted instance folds
//! the same view again without asking anyone.

pub mod handlers;
pub mod learned;
pub mod view;

use std::sync::Arc;

use contracts::recommendations::{GetBoughtTogether, GetForYou, SERVICE};
use runtime::{LiveView, OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::RecommendationsService;
use crate::view::RecommendationsView;

/// The recommendations view's name, in logs.
pub const RECOMMENDATIONS_VIEW: &str = "recommendations.statistics";

/// Starts recommendations: replays its view, consumes orders' and the catalog's events and
/// serves its queries on the bus.
///
/// Orders' and the catalog's events must be published on the bus first (`publish_events`),
/// since the in-process bus refuses a consumer whose source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let (view, follower) = LiveView::<RecommendationsView>::start(RECOMMENDATIONS_VIEW, context.store.clone()).await?;
    let consumers = match learned::start(&*context.bus, context.store.clone(), context.consumers.clone()).await {
        Ok(consumers) => consumers,
        Err(error) => {
            follower.stop().await;
            return Err(error.into());
        }
    };
    let service = Arc::new(RecommendationsService::new(context.bus.clone(), view));
    let router = router(service).with_admin(&context);
    let description = "products bought together and popular in a category";
    RunningService::new()
        .with_consumers(consumers)
        .with_task(follower)
        .serving(router, &*context.bus, SERVICE, description)
        .await
}

fn router(service: Arc<RecommendationsService>) -> OperationRouter {
    let (together, for_you) = (service.clone(), service);
    OperationRouter::new()
        .route::<GetBoughtTogether, _, _>(move |request, context| {
            let service = together.clone();
            async move { service.bought_together(request, context).await }
        })
        .route::<GetForYou, _, _>(move |request, context| {
            let service = for_you.clone();
            async move { service.for_you(request, context).await }
        })
}
