//! The reviews: ratings and comments on products, one per user and product, with a verified-purchase badge learned from orders' and shipping's events.

use contracts::reviews::SERVICE;
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

/// Starts reviews and serves its operations on the bus.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let router = OperationRouter::new().with_health_check(context.store.clone());
    RunningService::new().serving(router, &*context.bus, SERVICE, "reviews").await
}
