//! framework (in progress)
