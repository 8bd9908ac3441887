//! deployment (in progress)
