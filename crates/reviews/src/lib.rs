//! The reviews service: ratings and comments on products, one per user and product, with a
//! verified-purchase badge learned from orders' events.
//!
//! - [`domain`]: the `ReviewSlot` (a user's review of a product) and `ProductRating`
//!   aggregates, pure.
//! - [`handlers`]: the operations of `contracts::reviews`, on reviews' own store.
//! - [`purchases`]: the consumer that records which products orders delivered to whom.
//! - [`view`]: the reviews view: reviews per product, ratings, what each user received.
//!
//! Decisions worth knowing:
//! - One review per user and product, decided on the stream of that (product, user) pair.
//!   Once a review is removed, its author may post a new one (with a new id).
//! - `verified_purchase` is computed when a review is read: a review posted before its
//!   product was delivered shows the badge once it has been.
//! - A post or removal appends the product's new rating total in the same transaction
//!   (`ProductRatingChanged` on `rating-<product id>`), which the catalog consumes.

pub mod domain;
pub mod handlers;
pub mod purchases;
pub mod view;

use std::sync::Arc;

use contracts::reviews::{GetReview, ListReviews, PostReview, RemoveReview, SERVICE};
use runtime::{LiveView, OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::Reviews;
use crate::view::ReviewsView;

/// The reviews view's name, in logs.
pub const REVIEWS_VIEW: &str = "reviews.reviews";

/// Starts reviews: replays the reviews view, consumes orders' confirmations and
/// deliveries, and serves every reviews operation on the bus.
///
/// Orders' events must be published on the bus first (`publish_events("orders", …)`), since
/// the in-process bus refuses a consumer whose source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let (view, follower) = LiveView::<ReviewsView>::start(REVIEWS_VIEW, context.store.clone()).await?;
    let purchases = match purchases::start(&*context.bus, context.store.clone(), context.consumers.clone()).await {
        Ok(purchases) => purchases,
        Err(error) => {
            follower.stop().await;
            return Err(error.into());
        }
    };
    let reviews = Arc::new(Reviews::new(context.store.clone(), context.bus.clone(), view));
    let router = router(reviews).with_admin(&context);
    RunningService::new()
        .with_consumer(purchases)
        .with_task(follower)
        .serving(router, &*context.bus, SERVICE, "product reviews and ratings, with verified purchases")
        .await
}

fn router(reviews: Arc<Reviews>) -> OperationRouter {
    let (post, get, list, remove) = (reviews.clone(), reviews.clone(), reviews.clone(), reviews);
    OperationRouter::new()
        .route::<PostReview, _, _>(move |request, context| {
            let reviews = post.clone();
            async move { reviews.post_review(request, context).await }
        })
        .route::<GetReview, _, _>(move |request, context| {
            let reviews = get.clone();
            async move { reviews.get_review(request, context).await }
        })
        .route::<ListReviews, _, _>(move |request, context| {
            let reviews = list.clone();
            async move { reviews.list_reviews(request, context).await }
        })
        .route::<RemoveReview, _, _>(move |request, context| {
            let reviews = remove.clone();
            async move { reviews.remove_review(request, context).await }
        })
}
