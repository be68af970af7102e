//! The recommendations: products bought together and popular in a category, learned from confirmed orders.

use contracts::recommendations::SERVICE;
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

/// Starts recommendations and serves its operations on the bus.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let router = OperationRouter::new().with_health_check(context.store.clone());
    RunningService::new().serving(router, &*context.bus, SERVICE, "recommendations").await
}
