//! gc (in progress)
