//! reviews: ratings and comments on products, one per user and product, with a verified-purchase badge learned from orders' and shipping's events.

pub const SERVICE: &str = "reviews";
