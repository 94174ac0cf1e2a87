//! # tsuitate-viewer
//!
//! The LGWAN-side viewer: a QUIC client to the gateway ([`client`], [`session`]), H.264
//! decoding on its own thread ([`decode`]), a window ([`window`]) and a headless scripted mode
//! for tests and monitoring ([`headless`], [`script`], [`report`]). See docs/viewer.md.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
pub mod client;
pub mod clock;
pub mod config;
pub mod decode;
pub mod headless;
pub mod i18n;
pub mod keys;
pub mod outcome;
pub mod pipeline;
pub mod report;
pub mod script;
pub mod session;
pub mod snapshot;
pub mod window;
