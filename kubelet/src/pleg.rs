//! pleg (in progress)
