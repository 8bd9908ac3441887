//! actions (in progress)
