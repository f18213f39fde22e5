//! Fault injection (in progress)
