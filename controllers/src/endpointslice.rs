//! endpointslice (in progress)
