//! # tsuitate-web
//!
//! The web viewer: an LGWAN-zone service that lets staff use tsuitate from Edge or Chrome with
//! nothing installed. To the gateway each browser login is an ordinary viewer (QUIC, the viewer
//! crate's client); toward the browser it serves HTTPS pages and one WebRTC connection per
//! session that carries the gateway's H.264 unchanged and the page's input events back.
//! See docs/viewer.md and docs/security-model.md (where the WebRTC stack runs, and why).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod http;
pub mod mux;
pub mod pages;
pub mod rtc;
pub mod session;
