//! `berth scheduler`: assigns pods to nodes. Pure parts: [`framework`] (filter and score
//! plugins over a snapshot of nodes and their pods), [`queue`] (priority order with
//! back-off) and [`cache`] (pods assumed on nodes before the watch confirms the binding).

pub mod cache;
pub mod framework;
pub mod queue;
pub mod run;
