//! Field ownership.
