//! The catalog service: products, prices and categories, and the listing shoppers browse.
