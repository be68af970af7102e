//! The recommendations queries, answered from the recommendations view.
//!
//! Recommendations has no commands: everything it knows it learned from events. A
//! product it has not heard of is asked of the catalog, so that an unknown product is
//! NotFound rather than a product without recommendations yet.

use std::sync::Arc;
use std::time::Duration;

use contracts::catalog::GetProduct;
use contracts::recommendations::{GetBoughtTogether, GetForYou, MAX_RECOMMENDATIONS, Recommendations};
use eventshop_core::bus::{Bus, CallError, MessageContext, Rejection, RejectionKind, call};
use runtime::{LiveView, forwarded};
use serde_json::json;
use uuid::Uuid;

use crate::view::RecommendationsView;

/// How long recommendations waits for the catalog: well inside the gateway's deadline.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The recommendations service's state: the view, and the bus to ask the catalog.
#[derive(Debug)]
pub struct RecommendationsService {
    bus: Arc<dyn Bus>,
    view: LiveView<RecommendationsView>,
}

impl RecommendationsService {
    pub fn new(bus: Arc<dyn Bus>, view: LiveView<RecommendationsView>) -> Self {
        RecommendationsService { bus, view }
    }

    /// What goes with a product.
    pub async fn bought_together(
        &self,
        request: GetBoughtTogether,
        context: MessageContext,
    ) -> Result<Recommendations, Rejection> {
        let limit = checked_limit(request.limit)?;
        if !self.view.read(|view| view.knows_product(request.product_id)) {
            self.check_product(request.product_id, &context).await?;
        }
        let items = self.view.read(|view| view.bought_together(request.product_id, limit));
        Ok(Recommendations { items })
    }

    /// What a user might like.
    pub async fn for_you(&self, request: GetForYou, _context: MessageContext) -> Result<Recommendations, Rejection> {
        let limit = checked_limit(request.limit)?;
        let items = self.view.read(|view| view.for_you(request.user_id, limit));
        Ok(Recommendations { items })
    }

    /// NotFound unless the catalog knows the product.
    async fn check_product(&self, product_id: Uuid, context: &MessageContext) -> Result<(), Rejection> {
        match call(&*self.bus, &GetProduct { product_id }, context.child(), CALL_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(CallError::Rejected(rejection)) if rejection.kind == RejectionKind::NotFound => {
                Err(Rejection::new(RejectionKind::NotFound, format!("there is no product {product_id}")))
            }
            Err(other) => Err(forwarded(other)),
        }
    }
}

fn checked_limit(limit: u32) -> Result<usize, Rejection> {
    if (1..=MAX_RECOMMENDATIONS).contains(&limit) {
        return Ok(limit as usize);
    }
    let message = format!("limit must be between 1 and {MAX_RECOMMENDATIONS}");
    Err(Rejection::new(RejectionKind::Invalid, message.clone())
        .with_details(json!({ "errors": [{ "field": "limit", "message": message }] })))
}
