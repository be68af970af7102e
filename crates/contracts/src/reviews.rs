//! reviews: ratings and comments on products, one per user and product, with a
//! verified-purchase badge learned from orders' events.
//!
//! The value types of a review parse like those of [`crate::values`]: a [`Rating`] is a
//! whole number from 1 to 5, a [`ReviewTitle`] and a [`ReviewText`] are bounded text, so a
//! request that decodes holds a valid review.

use std::fmt;

use chrono::{DateTime, Utc};
use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::{InvalidValue, PageRequest};

pub const SERVICE: &str = "reviews";

/// Stars given to a product: a whole number from 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Rating(u8);

impl Rating {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 5;

    pub fn new(value: u8) -> Result<Self, InvalidValue> {
        Self::try_from(i64::from(value))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Rating {
    type Error = InvalidValue;
    fn try_from(value: i64) -> Result<Self, InvalidValue> {
        if (i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&value) {
            Ok(Rating(value as u8))
        } else {
            Err(InvalidValue(format!("a rating must be a whole number from {} to {}", Self::MIN, Self::MAX)))
        }
    }
}

impl From<Rating> for u8 {
    fn from(value: Rating) -> u8 {
        value.0
    }
}

/// Trimmed text of `min..=max` characters; control characters only where `allowed` says.
fn checked_text(
    value: &str,
    what: &str,
    min: usize,
    max: usize,
    allowed: fn(char) -> bool,
) -> Result<String, InvalidValue> {
    let value = value.trim();
    let length = value.chars().count();
    if length < min {
        return Err(InvalidValue(format!("{what} must not be empty")));
    }
    if length > max {
        return Err(InvalidValue(format!("{what} must have at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(InvalidValue(format!("{what} must not contain control characters")));
    }
    Ok(value.to_owned())
}

/// Declares a text newtype of a review, checked by `checked_text` with these bounds.
macro_rules! review_text {
    ($(#[$doc:meta])* $name:ident, $what:expr, $min:expr, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LENGTH: usize = $max;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                checked_text(&value, $what, $min, $max, $allowed).map($name)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

review_text!(
    /// A review's headline: 1 to 200 characters on one line.
    ReviewTitle,
    "a title",
    1,
    200,
    |_| false
);

review_text!(
    /// What the reviewer has to say: up to 5,000 characters, line breaks and tabs allowed;
    /// may be empty (the rating and title say enough).
    ReviewText,
    "a review body",
    0,
    5000,
    |c| matches!(c, '\n' | '\r' | '\t')
);

/// A review as anyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub rating: Rating,
    pub title: ReviewTitle,
    pub body: ReviewText,
    /// The author has received this product (an order of theirs holding it was delivered),
    /// before or after writing the review.
    pub verified_purchase: bool,
    pub created_at: DateTime<Utc>,
    /// The version of the stream of this user's review of this product, for `ETag`.
    pub version: u64,
}

/// A page of a product's reviews, newest first, with what all of them add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductReviews {
    pub items: Vec<Review>,
    pub next_cursor: Option<String>,
    /// The mean rating of the product's reviews; 0 when it has none.
    pub rating: f64,
    pub review_count: u64,
}

/// Posts a review of a product that exists (NotFound otherwise). One per user and
/// product: Conflict when the user's review of it stands. `review_id` is chosen by the
/// caller (derived from the Idempotency-Key, or new): posting it again answers the review.
/// A removed review's id cannot be posted again (Conflict); the user may post a new one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostReview {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub rating: Rating,
    pub title: ReviewTitle,
    pub body: ReviewText,
}
operation!(PostReview, SERVICE, Review);

/// One review of a product; NotFound if it does not exist, was removed, or is of
/// another product.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetReview {
    pub product_id: Uuid,
    pub review_id: Uuid,
}
operation!(GetReview, SERVICE, Review);

/// A product's reviews, newest first. NotFound when the product has none and the catalog
/// does not know it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListReviews {
    pub product_id: Uuid,
    pub page: PageRequest,
}
operation!(ListReviews, SERVICE, ProductReviews);

/// Removes a review: by its author (`viewer` Some) or an administrator (`viewer` None);
/// anyone else is Forbidden. Removing a removed review changes nothing. NotFound if the
/// product has no such review; `expected_version` (from `If-Match`) must match if given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveReview {
    pub product_id: Uuid,
    pub review_id: Uuid,
    pub viewer: Option<Uuid>,
    pub expected_version: Option<u64>,
}
operation!(RemoveReview, SERVICE, ());

/// The events of a user's review of a product (`review-<slot>`, the slot derived from the
/// product and the user), and of a product's rating (`rating-<product id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ReviewsEvent {
    ReviewPosted {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        rating: Rating,
        title: ReviewTitle,
        body: ReviewText,
    },
    ReviewRemoved {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        rating: Rating,
        /// Who removed it: the author, or an administrator (None).
        removed_by: Option<Uuid>,
    },
    /// What a product's standing reviews add up to after a post or a removal, appended in
    /// the same transaction: one stream per product, so its consumers (the catalog) see
    /// the totals in order and need no state of their own.
    ProductRatingChanged {
        product_id: Uuid,
        review_count: u64,
        /// The sum of the standing reviews' ratings; the mean is `rating_total / review_count`.
        rating_total: u64,
    },
}

impl DomainEvent for ReviewsEvent {}

/// The mean of `review_count` ratings adding up to `rating_total`, to one decimal (as shown
/// on a product); 0 without reviews.
pub fn mean_rating(rating_total: u64, review_count: u64) -> f64 {
    if review_count == 0 {
        return 0.0;
    }
    let mean = rating_total as f64 / review_count as f64;
    (mean * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_whole_numbers_from_one_to_five() {
        for good in 1..=5 {
            assert_eq!(serde_json::from_str::<Rating>(&good.to_string()).unwrap().get(), good as u8);
        }
        for bad in ["0", "6", "-1", "4.5", "\"4\"", "null"] {
            assert!(serde_json::from_str::<Rating>(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(serde_json::to_string(&Rating::new(4).unwrap()).unwrap(), "4");
    }

    #[test]
    fn titles_and_bodies_are_trimmed_and_bounded() {
        let title = ReviewTitle::try_from("  Great mug ".to_owned()).unwrap();
        assert_eq!(title.as_str(), "Great mug");
        assert!(ReviewTitle::try_from("   ".to_owned()).is_err());
        assert!(ReviewTitle::try_from("x".repeat(201)).is_err());
        assert!(ReviewTitle::try_from("two\nlines".to_owned()).is_err());
        assert!(ReviewText::try_from(String::new()).is_ok(), "a body may be empty");
        assert!(ReviewText::try_from("line one\nline two\ttabbed".to_owned()).is_ok());
        assert!(ReviewText::try_from("bell\u{7}".to_owned()).is_err());
        assert!(ReviewText::try_from("x".repeat(5001)).is_err());
    }

    #[test]
    fn the_mean_has_one_decimal() {
        assert_eq!(mean_rating(0, 0), 0.0);
        assert_eq!(mean_rating(13, 3), 4.3);
        assert_eq!(mean_rating(9, 2), 4.5);
        assert_eq!(mean_rating(5, 1), 5.0);
    }
}
