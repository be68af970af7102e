//! The reviews' aggregates, pure: no I/O.
//!
//! - [`ReviewSlot`]: a user's review of one product (stream `review-<slot id>`, the id
//!   derived from the product and the user), so that the one-review-per-user-and-product
//!   rule is decided on one stream. A slot holds at most one standing review; once it is
//!   removed, the user may post a new one (with a new id).
//! - [`ProductRating`]: what the standing reviews of a product add up to (stream
//!   `rating-<product id>`). Every post and removal changes it in the same append as the
//!   review, so the totals are exact however many users review the product at once.

use std::collections::BTreeSet;

use contracts::reviews::{Rating, ReviewText, ReviewTitle, ReviewsEvent};
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The slot of `user_id`'s review of `product_id`: derived, so that every instance and
/// every retry finds the same stream.
pub fn slot_id(product_id: Uuid, user_id: Uuid) -> Uuid {
    Uuid::new_v5(&product_id, user_id.as_bytes())
}

/// A review as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedReview {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub rating: Rating,
    pub title: ReviewTitle,
    pub body: ReviewText,
}

/// Who asks for a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remover {
    /// A user, who may remove only their own review.
    User(Uuid),
    /// An administrator, who may remove any.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewCommand {
    /// Posts a review; posting the standing review again (same id) changes nothing.
    Post(PostedReview),
    /// Removes the review `review_id`; removing it again changes nothing.
    Remove { review_id: Uuid, by: Remover, expected_version: Option<Version> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("you have already reviewed this product (review {0}); remove it to post another")]
    AlreadyReviewed(Uuid),
    #[error("review {0} was removed; post a new review instead")]
    Removed(Uuid),
    #[error("there is no review {0} of this product")]
    NotFound(Uuid),
    #[error("only the author of a review or an administrator may remove it")]
    NotAuthor,
    #[error("the review is at version {actual}, not {expected}")]
    VersionMismatch { expected: Version, actual: Version },
}

/// One user's review of one product: the standing one, and the ids removed before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSlot {
    /// The user whose slot this is, once they posted in it.
    author: Option<Uuid>,
    standing: Option<PostedReview>,
    removed: BTreeSet<Uuid>,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
}

impl ReviewSlot {
    pub fn standing(&self) -> Option<&PostedReview> {
        self.standing.as_ref()
    }

    pub fn was_removed(&self, review_id: Uuid) -> bool {
        self.removed.contains(&review_id)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    fn post(&self, review: &PostedReview) -> Result<Vec<ReviewsEvent>, ReviewError> {
        match &self.standing {
            Some(standing) if standing.review_id == review.review_id => Ok(Vec::new()),
            Some(standing) => Err(ReviewError::AlreadyReviewed(standing.review_id)),
            None if self.removed.contains(&review.review_id) => Err(ReviewError::Removed(review.review_id)),
            None => Ok(vec![ReviewsEvent::ReviewPosted {
                review_id: review.review_id,
                product_id: review.product_id,
                user_id: review.user_id,
                rating: review.rating,
                title: review.title.clone(),
                body: review.body.clone(),
            }]),
        }
    }

    fn remove(
        &self,
        review_id: Uuid,
        by: Remover,
        expected_version: Option<Version>,
    ) -> Result<Vec<ReviewsEvent>, ReviewError> {
        let known = self.standing.as_ref().is_some_and(|standing| standing.review_id == review_id)
            || self.removed.contains(&review_id);
        // The slot is one user's: whoever wrote a review in it, standing or removed, is them.
        let (true, Some(author)) = (known, self.author) else {
            return Err(ReviewError::NotFound(review_id));
        };
        if let Remover::User(user_id) = by
            && user_id != author
        {
            return Err(ReviewError::NotAuthor);
        }
        if let Some(expected) = expected_version
            && expected != self.version
        {
            return Err(ReviewError::VersionMismatch { expected, actual: self.version });
        }
        let Some(standing) = self.standing.as_ref().filter(|standing| standing.review_id == review_id) else {
            return Ok(Vec::new());
        };
        Ok(vec![ReviewsEvent::ReviewRemoved {
            review_id,
            product_id: standing.product_id,
            user_id: standing.user_id,
            rating: standing.rating,
            removed_by: match by {
                Remover::User(user_id) => Some(user_id),
                Remover::Admin => None,
            },
        }])
    }
}

impl Aggregate for ReviewSlot {
    const CATEGORY: &'static str = "review";

    type Command = ReviewCommand;
    type Event = ReviewsEvent;
    type Error = ReviewError;

    fn decide(&self, command: &ReviewCommand) -> Result<Vec<ReviewsEvent>, ReviewError> {
        match command {
            ReviewCommand::Post(review) => self.post(review),
            ReviewCommand::Remove { review_id, by, expected_version } => {
                self.remove(*review_id, *by, *expected_version)
            }
        }
    }

    fn apply(mut self, event: &ReviewsEvent) -> Self {
        self.version += 1;
        match event {
            ReviewsEvent::ReviewPosted { review_id, product_id, user_id, rating, title, body } => {
                self.author = Some(*user_id);
                self.standing = Some(PostedReview {
                    review_id: *review_id,
                    product_id: *product_id,
                    user_id: *user_id,
                    rating: *rating,
                    title: title.clone(),
                    body: body.clone(),
                });
            }
            ReviewsEvent::ReviewRemoved { review_id, .. } => {
                if self.standing.as_ref().is_some_and(|standing| standing.review_id == *review_id) {
                    self.standing = None;
                }
                self.removed.insert(*review_id);
            }
            // Not an event of a slot's stream.
            ReviewsEvent::ProductRatingChanged { .. } => {}
        }
        self
    }
}

/// What changes a product's rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingCommand {
    /// A review with this rating now stands.
    Add { product_id: Uuid, rating: Rating },
    /// A review with this rating was removed.
    Subtract { product_id: Uuid, rating: Rating },
}

/// What the standing reviews of a product add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRating {
    pub review_count: u64,
    pub rating_total: u64,
}

impl Aggregate for ProductRating {
    const CATEGORY: &'static str = "rating";

    type Command = RatingCommand;
    type Event = ReviewsEvent;
    type Error = std::convert::Infallible;

    fn decide(&self, command: &RatingCommand) -> Result<Vec<ReviewsEvent>, Self::Error> {
        let (product_id, review_count, rating_total) = match *command {
            RatingCommand::Add { product_id, rating } => (
                product_id,
                self.review_count.saturating_add(1),
                self.rating_total.saturating_add(u64::from(rating.get())),
            ),
            // The slot removes only a standing review, which was added: never below zero,
            // but saturating keeps `apply`'s arithmetic total anyway.
            RatingCommand::Subtract { product_id, rating } => (
                product_id,
                self.review_count.saturating_sub(1),
                self.rating_total.saturating_sub(u64::from(rating.get())),
            ),
        };
        Ok(vec![ReviewsEvent::ProductRatingChanged { product_id, review_count, rating_total }])
    }

    fn apply(self, event: &ReviewsEvent) -> Self {
        match event {
            ReviewsEvent::ProductRatingChanged { review_count, rating_total, .. } => {
                ProductRating { review_count: *review_count, rating_total: *rating_total }
            }
            ReviewsEvent::ReviewPosted { .. } | ReviewsEvent::ReviewRemoved { .. } => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use eventshop_core::testing::AggregateTest;

    use super::*;

    const PRODUCT: Uuid = Uuid::from_u128(0x9_0d);
    const ANN: Uuid = Uuid::from_u128(0xa11);
    const BOB: Uuid = Uuid::from_u128(0xb0b);
    const FIRST: Uuid = Uuid::from_u128(1);
    const SECOND: Uuid = Uuid::from_u128(2);

    fn review(review_id: Uuid, stars: u8) -> PostedReview {
        PostedReview {
            review_id,
            product_id: PRODUCT,
            user_id: ANN,
            rating: Rating::new(stars).expect("a valid rating"),
            title: ReviewTitle::try_from("Solid".to_owned()).expect("a valid title"),
            body: ReviewText::try_from("Does what it says.".to_owned()).expect("a valid body"),
        }
    }

    fn posted(review_id: Uuid, stars: u8) -> ReviewsEvent {
        let review = review(review_id, stars);
        ReviewsEvent::ReviewPosted {
            review_id,
            product_id: PRODUCT,
            user_id: ANN,
            rating: review.rating,
            title: review.title,
            body: review.body,
        }
    }

    fn removed(review_id: Uuid, stars: u8, removed_by: Option<Uuid>) -> ReviewsEvent {
        ReviewsEvent::ReviewRemoved {
            review_id,
            product_id: PRODUCT,
            user_id: ANN,
            rating: Rating::new(stars).expect("a valid rating"),
            removed_by,
        }
    }

    fn remove(review_id: Uuid, by: Remover) -> ReviewCommand {
        ReviewCommand::Remove { review_id, by, expected_version: None }
    }

    #[test]
    fn a_first_review_is_posted_and_posting_it_again_changes_nothing() {
        AggregateTest::<ReviewSlot>::given_no_history()
            .when(ReviewCommand::Post(review(FIRST, 4)))
            .then_expect_events(vec![posted(FIRST, 4)]);
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(ReviewCommand::Post(review(FIRST, 4)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_second_review_by_the_same_user_is_refused_while_the_first_stands() {
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(ReviewCommand::Post(review(SECOND, 2)))
            .then_expect_error(ReviewError::AlreadyReviewed(FIRST));
    }

    #[test]
    fn after_a_removal_a_new_review_may_be_posted_but_not_the_removed_one() {
        let history = vec![posted(FIRST, 4), removed(FIRST, 4, Some(ANN))];
        AggregateTest::<ReviewSlot>::given(history.clone())
            .when(ReviewCommand::Post(review(SECOND, 2)))
            .then_expect_events(vec![posted(SECOND, 2)]);
        AggregateTest::<ReviewSlot>::given(history)
            .when(ReviewCommand::Post(review(FIRST, 4)))
            .then_expect_error(ReviewError::Removed(FIRST));
    }

    #[test]
    fn the_author_or_an_administrator_removes_a_review_and_nobody_else() {
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(remove(FIRST, Remover::User(ANN)))
            .then_expect_events(vec![removed(FIRST, 4, Some(ANN))]);
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(remove(FIRST, Remover::Admin))
            .then_expect_events(vec![removed(FIRST, 4, None)]);
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(remove(FIRST, Remover::User(BOB)))
            .then_expect_error(ReviewError::NotAuthor);
    }

    #[test]
    fn removing_a_removed_review_changes_nothing_and_an_unknown_one_is_not_found() {
        let history = vec![posted(FIRST, 4), removed(FIRST, 4, None)];
        AggregateTest::<ReviewSlot>::given(history.clone())
            .when(remove(FIRST, Remover::User(ANN)))
            .then_expect_events(vec![]);
        AggregateTest::<ReviewSlot>::given(history)
            .when(remove(FIRST, Remover::User(BOB)))
            .then_expect_error(ReviewError::NotAuthor);
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(remove(SECOND, Remover::Admin))
            .then_expect_error(ReviewError::NotFound(SECOND));
        AggregateTest::<ReviewSlot>::given_no_history()
            .when(remove(FIRST, Remover::Admin))
            .then_expect_error(ReviewError::NotFound(FIRST));
    }

    #[test]
    fn a_removal_with_a_stale_version_is_refused() {
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(ReviewCommand::Remove { review_id: FIRST, by: Remover::User(ANN), expected_version: Some(2) })
            .then_expect_error(ReviewError::VersionMismatch { expected: 2, actual: 1 });
        AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4)])
            .when(ReviewCommand::Remove { review_id: FIRST, by: Remover::User(ANN), expected_version: Some(1) })
            .then_expect_events(vec![removed(FIRST, 4, Some(ANN))]);
    }

    #[test]
    fn the_slot_keeps_the_standing_review() {
        let state = AggregateTest::<ReviewSlot>::given(vec![posted(FIRST, 4), removed(FIRST, 4, None)])
            .when(ReviewCommand::Post(review(SECOND, 5)))
            .then_state();
        assert_eq!(state.standing().map(|review| review.review_id), Some(SECOND));
        assert!(state.was_removed(FIRST));
        assert_eq!(state.version(), 3);
    }

    fn rating(stars: u8) -> Rating {
        Rating::new(stars).expect("a valid rating")
    }

    fn changed(review_count: u64, rating_total: u64) -> ReviewsEvent {
        ReviewsEvent::ProductRatingChanged { product_id: PRODUCT, review_count, rating_total }
    }

    #[test]
    fn a_product_rating_adds_up_its_standing_reviews() {
        AggregateTest::<ProductRating>::given_no_history()
            .when(RatingCommand::Add { product_id: PRODUCT, rating: rating(4) })
            .then_expect_events(vec![changed(1, 4)]);
        AggregateTest::<ProductRating>::given(vec![changed(1, 4)])
            .when(RatingCommand::Add { product_id: PRODUCT, rating: rating(2) })
            .then_expect_events(vec![changed(2, 6)]);
        AggregateTest::<ProductRating>::given(vec![changed(1, 4), changed(2, 6)])
            .when(RatingCommand::Subtract { product_id: PRODUCT, rating: rating(4) })
            .then_expect_events(vec![changed(1, 2)]);
    }
}
