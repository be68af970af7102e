//! The shipping service: shipments of confirmed orders.
