//! The reviews view: every review with the products it is of, the products' ratings, and
//! who has received what, folded from reviews' own store (replayed at start, followed
//! live; see docs/decisions/0004).
//!
//! The verified-purchase badge is computed when a review is read, from the set of
//! (user, product) pairs received: a review written before its product arrived shows the
//! badge once it has.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use contracts::reviews::{ProductReviews, Rating, Review, ReviewText, ReviewTitle, ReviewsEvent, mean_rating};
use contracts::values::PageRequest;
use eventshop_core::{Aggregate, EventCodec, Position, RecordedEvent, Version};
use runtime::View;
use uuid::Uuid;

use crate::domain::{ProductRating, ReviewSlot};
use crate::purchases::{self, PurchaseEvent};

pub use contracts::values::ListError;

/// A review as the view keeps it.
#[derive(Debug, Clone)]
struct ListedReview {
    review_id: Uuid,
    product_id: Uuid,
    user_id: Uuid,
    rating: Rating,
    title: ReviewTitle,
    body: ReviewText,
    created_at: DateTime<Utc>,
    /// The version of the slot's stream once the review was posted.
    version: Version,
    /// Where ReviewPosted is in the store: the list's order, newest first.
    posted_position: Position,
    removed: bool,
}

/// Where a review is: what a removal needs to find its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewLocation {
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub removed: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ReviewsView {
    reviews_codec: EventCodec<ReviewsEvent>,
    purchase_codec: EventCodec<PurchaseEvent>,
    /// Every review ever posted, removed ones too (a removal finds them by id).
    reviews: HashMap<Uuid, ListedReview>,
    /// The standing reviews of each product, by where they were posted.
    by_product: HashMap<Uuid, BTreeMap<Position, Uuid>>,
    ratings: HashMap<Uuid, ProductRating>,
    /// Confirmed orders not delivered yet: their buyer and products.
    awaiting_delivery: HashMap<Uuid, (Uuid, Vec<Uuid>)>,
    /// (user, product): the user has received the product.
    received: HashSet<(Uuid, Uuid)>,
}

impl View for ReviewsView {
    fn apply(&mut self, recorded: &RecordedEvent) {
        let category = recorded.stream_id.category();
        if category == purchases::CATEGORY {
            match self.purchase_codec.decode(recorded) {
                Ok(event) => self.apply_purchase(event),
                Err(error) => tracing::error!(event_id = %recorded.event_id, %error, "reviews view skips an event"),
            }
        } else if category == ReviewSlot::CATEGORY || category == ProductRating::CATEGORY {
            match self.reviews_codec.decode(recorded) {
                Ok(event) => self.apply_review(event, recorded),
                Err(error) => tracing::error!(event_id = %recorded.event_id, %error, "reviews view skips an event"),
            }
        }
    }
}

impl ReviewsView {
    fn apply_review(&mut self, event: ReviewsEvent, recorded: &RecordedEvent) {
        match event {
            ReviewsEvent::ReviewPosted { review_id, product_id, user_id, rating, title, body } => {
                self.by_product.entry(product_id).or_default().insert(recorded.position, review_id);
                self.reviews.insert(
                    review_id,
                    ListedReview {
                        review_id,
                        product_id,
                        user_id,
                        rating,
                        title,
                        body,
                        created_at: recorded.recorded_at,
                        version: recorded.stream_version,
                        posted_position: recorded.position,
                        removed: false,
                    },
                );
            }
            ReviewsEvent::ReviewRemoved { review_id, .. } => {
                if let Some(review) = self.reviews.get_mut(&review_id) {
                    review.removed = true;
                    review.version = recorded.stream_version;
                    if let Some(standing) = self.by_product.get_mut(&review.product_id) {
                        standing.remove(&review.posted_position);
                    }
                }
            }
            ReviewsEvent::ProductRatingChanged { product_id, review_count, rating_total } => {
                self.ratings.insert(product_id, ProductRating { review_count, rating_total });
            }
        }
    }

    fn apply_purchase(&mut self, event: PurchaseEvent) {
        match event {
            PurchaseEvent::PurchaseRecorded { order_id, user_id, product_ids } => {
                self.awaiting_delivery.insert(order_id, (user_id, product_ids));
            }
            PurchaseEvent::PurchaseDelivered { order_id, .. } => {
                if let Some((user_id, product_ids)) = self.awaiting_delivery.remove(&order_id) {
                    self.received.extend(product_ids.into_iter().map(|product_id| (user_id, product_id)));
                }
            }
        }
    }

    /// Whether `user_id` has received `product_id`.
    pub fn has_received(&self, user_id: Uuid, product_id: Uuid) -> bool {
        self.received.contains(&(user_id, product_id))
    }

    /// A standing review.
    pub fn get(&self, review_id: Uuid) -> Option<Review> {
        self.reviews.get(&review_id).filter(|review| !review.removed).map(|review| self.to_review(review))
    }

    /// Where a review is, removed or not.
    pub fn locate(&self, review_id: Uuid) -> Option<ReviewLocation> {
        self.reviews.get(&review_id).map(|review| ReviewLocation {
            product_id: review.product_id,
            user_id: review.user_id,
            removed: review.removed,
        })
    }

    /// What a product's standing reviews add up to.
    pub fn rating(&self, product_id: Uuid) -> ProductRating {
        self.ratings.get(&product_id).copied().unwrap_or_default()
    }

    /// Whether the view has seen any review of the product, standing or removed: then the
    /// product exists without asking the catalog.
    pub fn knows_product(&self, product_id: Uuid) -> bool {
        self.by_product.contains_key(&product_id)
    }

    /// A page of a product's standing reviews, newest first.
    pub fn list(&self, product_id: Uuid, page: &PageRequest) -> Result<ProductReviews, ListError> {
        let limit = page.limit;
        if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
            return Err(ListError::Limit);
        }
        let before = page.cursor.as_deref().map(decode_cursor).transpose()?;
        let rating = self.rating(product_id);
        let mut shown: Vec<(Position, Review)> = match self.by_product.get(&product_id) {
            None => Vec::new(),
            Some(standing) => {
                let range = match before {
                    Some(before) => standing.range(..before),
                    None => standing.range(..),
                };
                // One more than asked for, to know whether another page follows.
                range
                    .rev()
                    .filter_map(|(position, review_id)| self.get(*review_id).map(|review| (*position, review)))
                    .take(limit as usize + 1)
                    .collect()
            }
        };
        let next_cursor = if shown.len() > limit as usize {
            shown.truncate(limit as usize);
            shown.last().map(|(position, _)| encode_cursor(*position))
        } else {
            None
        };
        Ok(ProductReviews {
            items: shown.into_iter().map(|(_, review)| review).collect(),
            next_cursor,
            rating: mean_rating(rating.rating_total, rating.review_count),
            review_count: rating.review_count,
        })
    }

    fn to_review(&self, review: &ListedReview) -> Review {
        Review {
            id: review.review_id,
            product_id: review.product_id,
            user_id: review.user_id,
            rating: review.rating,
            title: review.title.clone(),
            body: review.body.clone(),
            verified_purchase: self.has_received(review.user_id, review.product_id),
            created_at: review.created_at,
            version: review.version,
        }
    }
}

/// A cursor is the position of the last review shown: the next page starts below it.
fn encode_cursor(position: Position) -> String {
    format!("r{}", position.0)
}

fn decode_cursor(cursor: &str) -> Result<Position, ListError> {
    let digits = cursor.strip_prefix('r').ok_or(ListError::Cursor)?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ListError::Cursor);
    }
    digits.parse().map(Position).map_err(|_| ListError::Cursor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventshop_core::{DomainEvent, Metadata, StreamId};

    use crate::domain::slot_id;

    const PRODUCT: Uuid = Uuid::from_u128(0x9_0d);
    const ANN: Uuid = Uuid::from_u128(0xa11);
    const BOB: Uuid = Uuid::from_u128(0xb0b);

    /// Feeds typed events to a view as a store would record them, one position each.
    #[derive(Default)]
    struct Feed {
        view: ReviewsView,
        position: u64,
        versions: HashMap<StreamId, Version>,
    }

    impl Feed {
        fn record<E: DomainEvent>(&mut self, stream_id: StreamId, event: E) -> &mut Self {
            self.position += 1;
            let version = self.versions.entry(stream_id.clone()).or_default();
            *version += 1;
            let new = EventCodec::<E>::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
            let recorded = RecordedEvent {
                event_id: new.event_id,
                stream_id,
                stream_version: *version,
                position: Position(self.position),
                event_type: new.event_type,
                schema_version: new.schema_version,
                recorded_at: DateTime::from_timestamp(1_700_000_000 + self.position as i64, 0).expect("time"),
                correlation_id: new.metadata.correlation_id,
                causation_id: new.metadata.causation_id,
                acting_user: None,
                payload: new.payload,
            };
            self.view.apply(&recorded);
            self
        }

        fn post(&mut self, review: u128, user_id: Uuid, stars: u8) -> &mut Self {
            let event = ReviewsEvent::ReviewPosted {
                review_id: Uuid::from_u128(review),
                product_id: PRODUCT,
                user_id,
                rating: Rating::new(stars).expect("valid"),
                title: ReviewTitle::try_from(format!("Review {review}")).expect("valid"),
                body: ReviewText::try_from(String::new()).expect("valid"),
            };
            self.record(StreamId::new("review", slot_id(PRODUCT, user_id)), event)
        }

        fn remove(&mut self, review: u128, user_id: Uuid, stars: u8) -> &mut Self {
            let event = ReviewsEvent::ReviewRemoved {
                review_id: Uuid::from_u128(review),
                product_id: PRODUCT,
                user_id,
                rating: Rating::new(stars).expect("valid"),
                removed_by: None,
            };
            self.record(StreamId::new("review", slot_id(PRODUCT, user_id)), event)
        }

        fn purchase(&mut self, order: u128, event: PurchaseEvent) -> &mut Self {
            self.record(purchases::purchase_stream(Uuid::from_u128(order)), event)
        }
    }

    fn page(limit: u32, cursor: Option<String>) -> PageRequest {
        PageRequest { limit, cursor }
    }

    fn ids(reviews: &ProductReviews) -> Vec<u128> {
        reviews.items.iter().map(|review| review.id.as_u128()).collect()
    }

    #[test]
    fn reviews_list_newest_first_in_pages_without_removed_ones() {
        let mut feed = Feed::default();
        let carl = Uuid::from_u128(0xca71);
        feed.post(1, ANN, 5).post(2, BOB, 3).post(3, carl, 4).remove(2, BOB, 3);
        let first = feed.view.list(PRODUCT, &page(1, None)).expect("valid");
        assert_eq!(ids(&first), [3]);
        let second = feed.view.list(PRODUCT, &page(1, first.next_cursor.clone())).expect("valid");
        assert_eq!(ids(&second), [1]);
        assert_eq!(second.next_cursor, None, "no empty last page");
        assert!(feed.view.get(Uuid::from_u128(2)).is_none());
        let removed = feed.view.locate(Uuid::from_u128(2)).expect("still located");
        assert_eq!((removed.user_id, removed.removed), (BOB, true));
        assert!(feed.view.list(Uuid::nil(), &page(5, None)).expect("valid").items.is_empty());
    }

    #[test]
    fn a_product_shows_the_rating_its_rating_stream_says() {
        let mut feed = Feed::default();
        feed.record(
            StreamId::new("rating", PRODUCT),
            ReviewsEvent::ProductRatingChanged { product_id: PRODUCT, review_count: 3, rating_total: 13 },
        );
        let listed = feed.view.list(PRODUCT, &page(5, None)).expect("valid");
        assert_eq!((listed.rating, listed.review_count), (4.3, 3));
    }

    #[test]
    fn a_review_is_verified_once_its_author_received_the_product_before_or_after_posting() {
        let mut feed = Feed::default();
        feed.post(1, ANN, 5).post(2, BOB, 2);
        feed.purchase(
            7,
            PurchaseEvent::PurchaseRecorded { order_id: Uuid::from_u128(7), user_id: ANN, product_ids: vec![PRODUCT] },
        );
        assert!(!feed.view.get(Uuid::from_u128(1)).expect("standing").verified_purchase, "confirmed, not received");
        feed.purchase(7, PurchaseEvent::PurchaseDelivered { order_id: Uuid::from_u128(7), user_id: ANN });
        assert!(feed.view.get(Uuid::from_u128(1)).expect("standing").verified_purchase);
        assert!(!feed.view.get(Uuid::from_u128(2)).expect("standing").verified_purchase, "Bob bought nothing");
    }

    #[test]
    fn bad_pages_name_their_field() {
        let feed = Feed::default();
        let refused = |request: PageRequest| feed.view.list(PRODUCT, &request).expect_err("refused").field();
        assert_eq!(refused(page(0, None)), "limit");
        assert_eq!(refused(page(101, None)), "limit");
        assert_eq!(refused(page(5, Some("o12".into()))), "cursor");
        assert_eq!(refused(page(5, Some("r".into()))), "cursor");
        assert_eq!(refused(page(5, Some("r-1".into()))), "cursor");
    }
}
