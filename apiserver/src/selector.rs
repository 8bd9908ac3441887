//! Label and field selectors (in progress).
