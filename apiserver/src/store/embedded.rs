//! Embedded store (in progress).
