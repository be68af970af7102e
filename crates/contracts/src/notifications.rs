//! notifications: messages to buyers and administrators about what happened to their orders and the stock, kept in the app and sent by email when SMTP is configured.

pub const SERVICE: &str = "notifications";
