//! nodelifecycle (in progress)
