//! X11 side of a session: capture (MIT-SHM over a memfd, XDamage-driven, plain GetImage
//! fallback), the XFixes cursor composited into each frame, XTEST input injection, and the
//! browser windows kept at the session size (there is no window manager).
//!
//! No `unsafe` here: the SHM segment is a memfd passed with `ShmAttachFd` and read back with
//! `pread`, so nothing is mapped into this process.

mod capture;
mod cursor;
mod inject;
mod keymap;
mod window;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use x11rb::rust_connection::{DefaultStream, RustConnection};

use crate::browser::{DisplayAccess, AUTH_NAME};
use crate::frame::CaptureError;

pub use capture::{CaptureMode, X11Capture};
pub use cursor::composite_cursor;
pub use inject::X11Injector;
pub use keymap::{char_keysym, Keymap};
pub use window::WindowSizer;

/// A wake-up for the capture loop: something changed, or the display is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Damage, a cursor change or a pointer move.
    Change,
    /// The X connection failed.
    Lost,
}

/// Connect to the session's display with its cookie, retrying for up to `timeout`.
pub fn connect(access: &DisplayAccess, timeout: Duration) -> Result<RustConnection, CaptureError> {
    let deadline = Instant::now() + timeout;
    loop {
        match try_connect(access) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn try_connect(access: &DisplayAccess) -> Result<RustConnection, CaptureError> {
    let lost = |e: &dyn std::fmt::Display| CaptureError::Connection(e.to_string());
    let sock = UnixStream::connect(access.socket_path()).map_err(|e| lost(&e))?;
    let (stream, _peer) = DefaultStream::from_unix_stream(sock).map_err(|e| lost(&e))?;
    RustConnection::connect_to_stream_with_auth_info(
        stream,
        0,
        AUTH_NAME.as_bytes().to_vec(),
        access.cookie.clone(),
    )
    .map_err(|e| lost(&e))
}
