//! The orders service: orders, their status history and deadlines; where the checkout saga is decided.
