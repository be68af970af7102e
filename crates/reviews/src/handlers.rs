//! The reviews operations: posts and removals decided by a user's [`ReviewSlot`] and
//! appended together with the product's new [`ProductRating`] in one atomic append;
//! queries answered from the reviews view.
//!
//! A post asks the catalog whether the product exists (a request, not a read of the
//! catalog's data), unless the view already holds reviews of it. Every command answers
//! once the view shows its effect, so a read right after it sees it.

use std::sync::Arc;
use std::time::Duration;

use contracts::catalog::GetProduct;
use contracts::reviews::{GetReview, ListReviews, PostReview, ProductReviews, RemoveReview, Review, ReviewsEvent};
use eventshop_core::bus::{Bus, CallError, MessageContext, Rejection, RejectionKind, call};
use eventshop_core::{
    Aggregate, CommandHandler, EventCodec, EventStore, ExpectedVersion, Metadata, Position, StreamAppend,
};
use runtime::{LiveView, command_rejection, forwarded, internal};
use uuid::Uuid;

use crate::domain::{
    PostedReview, ProductRating, RatingCommand, Remover, ReviewCommand, ReviewError, ReviewSlot, slot_id,
};
use crate::view::{ReviewLocation, ReviewsView};

/// How long reviews waits for the catalog: well inside the gateway's own deadline.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a post or removal is decided again after another writer changed the
/// slot or the product's rating first.
const MAX_ATTEMPTS: u32 = 10;

/// The reviews service's state: its store, the aggregates' handlers and the view.
#[derive(Debug)]
pub struct Reviews {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn Bus>,
    slots: CommandHandler<ReviewSlot>,
    ratings: CommandHandler<ProductRating>,
    view: LiveView<ReviewsView>,
    codec: EventCodec<ReviewsEvent>,
}

impl Reviews {
    pub fn new(store: Arc<dyn EventStore>, bus: Arc<dyn Bus>, view: LiveView<ReviewsView>) -> Self {
        Reviews {
            slots: CommandHandler::new(store.clone()),
            ratings: CommandHandler::new(store.clone()),
            store,
            bus,
            view,
            codec: EventCodec::new(),
        }
    }

    /// Posts a review of a product that exists; a retry (same review id) answers it again.
    #[tracing::instrument(skip_all, fields(product_id = %request.product_id, review_id = %request.review_id))]
    pub async fn post_review(&self, request: PostReview, context: MessageContext) -> Result<Review, Rejection> {
        let product_id = request.product_id;
        if !self.view.read(|view| view.knows_product(product_id)) {
            self.check_product(product_id, &context).await?;
        }
        let review = PostedReview {
            review_id: request.review_id,
            product_id,
            user_id: request.user_id,
            rating: request.rating,
            title: request.title,
            body: request.body,
        };
        let (review_id, slot) = (review.review_id, slot_id(product_id, review.user_id));
        let position = self.decide(slot, &ReviewCommand::Post(review), &context).await?;
        self.answer(review_id, position).await
    }

    /// One standing review of the product.
    pub async fn get_review(&self, request: GetReview, _context: MessageContext) -> Result<Review, Rejection> {
        // Catches the view up first if another instance posted the review a moment ago.
        self.locate(request.review_id).await?;
        match self.view.read(|view| view.get(request.review_id)) {
            Some(review) if review.product_id == request.product_id => Ok(review),
            _ => Err(review_rejection(ReviewError::NotFound(request.review_id))),
        }
    }

    /// A page of a product's reviews. A product with none is asked of the catalog, so that
    /// an unknown product is NotFound rather than an empty list.
    pub async fn list_reviews(
        &self,
        request: ListReviews,
        context: MessageContext,
    ) -> Result<ProductReviews, Rejection> {
        let (listed, known) = self
            .view
            .read(|view| (view.list(request.product_id, &request.page), view.knows_product(request.product_id)));
        let listed = listed.map_err(Rejection::from)?;
        if !known && request.page.cursor.is_none() {
            self.check_product(request.product_id, &context).await?;
        }
        Ok(listed)
    }

    /// Removes a review, by its author or an administrator.
    #[tracing::instrument(skip_all, fields(product_id = %request.product_id, review_id = %request.review_id))]
    pub async fn remove_review(&self, request: RemoveReview, context: MessageContext) -> Result<(), Rejection> {
        let location = self.locate(request.review_id).await?;
        if location.product_id != request.product_id {
            return Err(review_rejection(ReviewError::NotFound(request.review_id)));
        }
        let by = request.viewer.map_or(Remover::Admin, Remover::User);
        let command =
            ReviewCommand::Remove { review_id: request.review_id, by, expected_version: request.expected_version };
        let slot = slot_id(location.product_id, location.user_id);
        let position = self.decide(slot, &command, &context).await?;
        if let Some(position) = position {
            self.view.caught_up(position).await;
        }
        Ok(())
    }

    /// Where a review is, from the view; if the view has not seen it, after it has caught
    /// up with the store (another instance may have posted it a moment ago).
    async fn locate(&self, review_id: Uuid) -> Result<ReviewLocation, Rejection> {
        if let Some(location) = self.view.read(|view| view.locate(review_id)) {
            return Ok(location);
        }
        let head = self.store.head_position().await.map_err(internal)?;
        self.view.caught_up(head).await;
        self.view.read(|view| view.locate(review_id)).ok_or_else(|| review_rejection(ReviewError::NotFound(review_id)))
    }

    /// Decides `command` on the slot and the rating change its events make on the
    /// product's rating; appends both at the versions they were decided on, deciding again
    /// when another writer was first. Answers the position appended at, or None when the
    /// command changed nothing.
    async fn decide(
        &self,
        slot: Uuid,
        command: &ReviewCommand,
        context: &MessageContext,
    ) -> Result<Option<Position>, Rejection> {
        let metadata = context.event_metadata();
        for _attempt in 0..MAX_ATTEMPTS {
            let loaded = self.slots.load(slot).await.map_err(|error| command_rejection(error, review_rejection))?;
            let events = loaded.state.decide(command).map_err(review_rejection)?;
            let Some(rating) = events.iter().find_map(rating_change) else {
                return Ok(None);
            };
            if let Some(position) = self.append(slot, loaded.version, &events, rating, metadata).await? {
                return Ok(Some(position));
            }
        }
        Err(Rejection::new(RejectionKind::Conflict, "the review kept changing; try again"))
    }

    /// Appends the slot's `events` and the rating change in one transaction. None when a
    /// stream moved since it was read: decide again.
    async fn append(
        &self,
        slot: Uuid,
        slot_version: u64,
        events: &[ReviewsEvent],
        rating: RatingCommand,
        metadata: Metadata,
    ) -> Result<Option<Position>, Rejection> {
        let (RatingCommand::Add { product_id, .. } | RatingCommand::Subtract { product_id, .. }) = rating;
        let loaded =
            self.ratings.load(product_id).await.map_err(|error| command_rejection(error, |never| match never {}))?;
        let Ok(rating_events) = loaded.state.decide(&rating);
        let encode = |events: &[ReviewsEvent]| {
            events
                .iter()
                .map(|event| self.codec.encode(event, metadata))
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)
        };
        let appends = vec![
            StreamAppend {
                stream_id: CommandHandler::<ReviewSlot>::stream_id(slot),
                expected: ExpectedVersion::after(slot_version),
                events: encode(events)?,
            },
            StreamAppend {
                stream_id: CommandHandler::<ProductRating>::stream_id(product_id),
                expected: ExpectedVersion::after(loaded.version),
                events: encode(&rating_events)?,
            },
        ];
        match self.store.append_many(appends).await {
            Ok(appended) => Ok(appended.iter().map(|result| result.position).max()),
            Err(error) if error.is_conflict() => {
                tracing::debug!(%slot, %product_id, "a review or rating moved; deciding again");
                Ok(None)
            }
            Err(error) => Err(internal(error)),
        }
    }

    /// The review as the view shows it once it has passed `appended_at` (or the store's
    /// head, when the review was written before by another instance).
    async fn answer(&self, review_id: Uuid, appended_at: Option<Position>) -> Result<Review, Rejection> {
        if let Some(position) = appended_at {
            self.view.caught_up(position).await;
        }
        if let Some(review) = self.view.read(|view| view.get(review_id)) {
            return Ok(review);
        }
        let head = self.store.head_position().await.map_err(internal)?;
        self.view.caught_up(head).await;
        self.view.read(|view| view.get(review_id)).ok_or_else(|| {
            Rejection::new(RejectionKind::Internal, "a review was written but the view does not show it")
        })
    }

    /// NotFound unless the catalog knows the product (discontinued ones too: their buyers
    /// may still review them).
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

/// What a slot's event does to its product's rating.
fn rating_change(event: &ReviewsEvent) -> Option<RatingCommand> {
    match *event {
        ReviewsEvent::ReviewPosted { product_id, rating, .. } => Some(RatingCommand::Add { product_id, rating }),
        ReviewsEvent::ReviewRemoved { product_id, rating, .. } => Some(RatingCommand::Subtract { product_id, rating }),
        ReviewsEvent::ProductRatingChanged { .. } => None,
    }
}

/// How a refused review command is answered.
pub fn review_rejection(error: ReviewError) -> Rejection {
    let kind = match error {
        ReviewError::AlreadyReviewed(_) | ReviewError::Removed(_) => RejectionKind::Conflict,
        ReviewError::NotFound(_) => RejectionKind::NotFound,
        ReviewError::NotAuthor => RejectionKind::Forbidden,
        ReviewError::VersionMismatch { .. } => RejectionKind::PreconditionFailed,
    };
    Rejection::new(kind, error.to_string())
}
