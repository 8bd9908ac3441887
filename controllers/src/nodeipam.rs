//! nodeipam (in progress)
