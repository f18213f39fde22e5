//! The generic cloud's JSON API (in progress)
