//! Kubernetes logic that several berth daemons need and that must behave the same in each:
//! resource quantities (`100m`, `1Gi`) and label and field selectors. The daemons meet only
//! through the API; this crate is the shared vocabulary, with no I/O.

pub mod quantity;
pub mod selector;
