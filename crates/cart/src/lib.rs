//! The cart service: one cart per user.
