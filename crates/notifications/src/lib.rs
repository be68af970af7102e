//! The notifications: messages to buyers and administrators about what happened to their orders and the stock, kept in the app and sent by email when SMTP is configured.

use contracts::notifications::SERVICE;
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

/// Starts notifications and serves its operations on the bus.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let router = OperationRouter::new().with_health_check(context.store.clone());
    RunningService::new().serving(router, &*context.bus, SERVICE, "notifications").await
}
