//! Keeps Chromium's browser windows at the session size. There is no window manager: the
//! Xvfb screen is as large as the largest session (`max_width`×`max_height`) and the session
//! is the rectangle (0, 0, width, height) at its top-left corner. This module
//!
//! - moves and resizes every mapped top-level window that is not override-redirect and not
//!   transient (browser windows, not menus, tooltips or dialogs) to exactly that rectangle,
//!   on [`WindowSizer::resize`] and whenever such a window is mapped (Ctrl+N, `target=_blank`
//!   windows open at Chromium's command-line size otherwise);
//! - publishes the rectangle as the root window's `_NET_WORKAREA`, which Chromium reads (and
//!   re-reads on change) to place menus and popups and to report `screen.availWidth`, so a
//!   context menu opened near the edge stays inside the captured area.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError};
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConfigureWindowAux, ConnectionExt as _, EventMask,
    MapState, PropMode, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use crate::frame::CaptureError;

/// Sizes the browser windows of one display (its own X connection and event thread).
pub struct WindowSizer {
    conn: Arc<RustConnection>,
    root: Window,
    workarea: u32,
    size: Arc<AtomicU32>,
}

impl std::fmt::Debug for WindowSizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowSizer")
            .field("size", &unpack(self.size.load(Ordering::SeqCst)))
            .finish_non_exhaustive()
    }
}

fn lost(e: ConnectionError) -> CaptureError {
    CaptureError::Connection(e.to_string())
}

fn pack((w, h): (u16, u16)) -> u32 {
    (u32::from(w) << 16) | u32::from(h)
}

fn unpack(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, (v & 0xffff) as u16)
}

impl WindowSizer {
    /// Watch `conn`'s screen for newly mapped browser windows and fit every browser window to
    /// `width`×`height` now.
    pub fn new(conn: RustConnection, width: u16, height: u16) -> Result<Self, CaptureError> {
        let root = conn
            .setup()
            .roots
            .first()
            .ok_or_else(|| CaptureError::Unsupported("no screen".into()))?
            .root;
        let workarea = conn
            .intern_atom(false, b"_NET_WORKAREA")
            .map_err(lost)?
            .reply()
            .map_err(|e| CaptureError::Request(e.to_string()))?
            .atom;
        let attrs = ChangeWindowAttributesAux::new().event_mask(EventMask::SUBSTRUCTURE_NOTIFY);
        conn.change_window_attributes(root, &attrs)
            .map_err(lost)?
            .check()
            .map_err(|e| CaptureError::Request(e.to_string()))?;
        let sizer = WindowSizer {
            conn: Arc::new(conn),
            root,
            workarea,
            size: Arc::new(AtomicU32::new(pack((width, height)))),
        };
        spawn_map_watcher(Arc::clone(&sizer.conn), root, Arc::clone(&sizer.size))?;
        sizer.resize(width, height)?;
        Ok(sizer)
    }

    /// The size browser windows are kept at.
    pub fn size(&self) -> (u16, u16) {
        unpack(self.size.load(Ordering::SeqCst))
    }

    /// Set the work area to `width`×`height` and fit every browser window to it. Blocking
    /// (a few round trips). Fails only when the display is gone.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), CaptureError> {
        self.size.store(pack((width, height)), Ordering::SeqCst);
        let area = [0, 0, u32::from(width), u32::from(height)];
        self.conn
            .change_property32(
                PropMode::REPLACE,
                self.root,
                self.workarea,
                AtomEnum::CARDINAL,
                &area,
            )
            .map_err(lost)?;
        let tree = self
            .conn
            .query_tree(self.root)
            .map_err(lost)?
            .reply()
            .map_err(|e| CaptureError::Request(e.to_string()))?;
        for window in tree.children {
            fit(&self.conn, window, (width, height)).map_err(lost)?;
        }
        self.conn
            .sync()
            .map_err(|e| CaptureError::Request(e.to_string()))
    }
}

/// A reply, `None` when the server answered with an error (the window vanished meanwhile).
fn tolerate<T>(r: Result<T, ReplyError>) -> Result<Option<T>, ConnectionError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ReplyError::X11Error(_)) => Ok(None),
        Err(ReplyError::ConnectionError(e)) => Err(e),
    }
}

/// Move and resize `window` to (0, 0, size) if it is a mapped browser window that is not
/// there yet. A window that vanished meanwhile is skipped; only a lost connection fails.
fn fit(conn: &RustConnection, window: Window, size: (u16, u16)) -> Result<(), ConnectionError> {
    let Some(attrs) = tolerate(conn.get_window_attributes(window)?.reply())? else {
        return Ok(());
    };
    if attrs.override_redirect
        || attrs.map_state != MapState::VIEWABLE
        || attrs.class != WindowClass::INPUT_OUTPUT
    {
        return Ok(());
    }
    // Dialogs (e.g. a file chooser) are transient for a browser window: leave them be.
    let transient = conn.get_property(
        false,
        window,
        AtomEnum::WM_TRANSIENT_FOR,
        AtomEnum::WINDOW,
        0,
        1,
    )?;
    match tolerate(transient.reply())? {
        Some(p) if p.value_len == 0 => {}
        _ => return Ok(()),
    }
    let Some(g) = tolerate(conn.get_geometry(window)?.reply())? else {
        return Ok(());
    };
    if (g.x, g.y, g.width, g.height) == (0, 0, size.0, size.1) {
        return Ok(());
    }
    let aux = ConfigureWindowAux::new()
        .x(0)
        .y(0)
        .width(u32::from(size.0))
        .height(u32::from(size.1));
    conn.configure_window(window, &aux)?;
    conn.flush()
}

/// Fit each browser window the moment it is mapped; ends when the display goes away.
fn spawn_map_watcher(
    conn: Arc<RustConnection>,
    root: Window,
    size: Arc<AtomicU32>,
) -> Result<(), CaptureError> {
    std::thread::Builder::new()
        .name("x11-windows".into())
        .spawn(move || loop {
            match conn.wait_for_event() {
                Ok(Event::MapNotify(e)) if e.event == root && !e.override_redirect => {
                    let target = unpack(size.load(Ordering::SeqCst));
                    if fit(&conn, e.window, target).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        })
        .map(|_| ())
        .map_err(|e| CaptureError::Unsupported(format!("thread: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_pack_both_ways() {
        for s in [(64, 64), (1920, 1080), (3840, 2160), (u16::MAX, 0)] {
            assert_eq!(unpack(pack(s)), s);
        }
    }
}
