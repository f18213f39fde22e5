//! Per-kind list and map semantics.
