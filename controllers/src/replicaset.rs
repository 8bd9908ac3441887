//! replicaset (in progress)
