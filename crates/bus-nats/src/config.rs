//! Live settings in a key-value bucket (being written).
