//! recommendations: products bought together and popular in a category, learned from confirmed orders.

pub const SERVICE: &str = "recommendations";
