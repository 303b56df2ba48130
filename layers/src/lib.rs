//! Channel layers.
