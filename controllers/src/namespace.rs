//! namespace (in progress)
