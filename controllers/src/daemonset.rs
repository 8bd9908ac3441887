//! daemonset (in progress)
