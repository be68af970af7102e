//! The payments service: wallets, payments and refunds.
