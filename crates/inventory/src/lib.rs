//! The inventory service: stock per product and reservations.
