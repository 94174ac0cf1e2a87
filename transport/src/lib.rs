//! tsuitate's one QUIC/TLS layer, shared by the gateway, the agent, the viewer, the benches
//! and the test kit (the role h3-quinn plays for h3).
//!
//! - [`tls`]: the one crypto provider (ring), PEM loading, certificate names.
//! - [`config`]: client and server configurations from one place with one set of tunings
//!   ([`Tuning`]): TLS 1.3 only, 0-RTT off, ALPN `tsuitate/1` only.
//! - [`stream`]: typed message streams over quinn — [`MessageReader::read`] yields
//!   `Ok(Some(msg))`, `Ok(None)` at a clean end, or an error (a stream that ends inside a
//!   message is an error, docs/protocol.md §2) — and typed writes.
//! - [`close`]: closing a connection with a protocol [`Reason`](tsuitate_protocol::Reason),
//!   and reading one back.
//!
//! Everything about bytes on the wire lives in `tsuitate-protocol` (sans-IO); this crate only
//! moves them.

pub mod close;
pub mod config;
pub mod plain_udp;
pub mod stream;
pub mod tls;

pub use close::{close, close_code, close_reason, last_words};
pub use config::{
    client_config, client_config_from_files, client_endpoint, server_config, ServerAuth, Tuning,
};
pub use stream::{
    spawn_reader, write, write_timeout, MessageReader, ReadEnd, ReadError, ReadItem,
    WriteTimeoutError,
};
pub use tls::TlsError;
