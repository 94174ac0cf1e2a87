//! Harness for the end-to-end tests: starts the real `tsuitate-gateway`, `tsuitate-agent` and
//! `tsuitate-viewer` binaries on loopback, serves a local test page, and cleans every process up.
#![forbid(unsafe_code)]

pub mod page;
pub mod procs;
pub mod stack;

pub use page::TestPage;
pub use procs::{bin, descendants, Child};
pub use stack::{Stack, ViewerRun};
