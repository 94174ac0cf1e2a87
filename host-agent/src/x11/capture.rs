//! Damage-driven screen capture of one display.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, Window};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::NONE;

use super::cursor::{composite_cursor, CursorImage};
use super::Wake;
use crate::frame::{now_us, CaptureError, Change, Frame, FrameSource};

/// How pixels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMode {
    /// MIT-SHM into a memfd shared with the server (fast).
    Shm,
    /// Plain GetImage over the socket (fallback).
    GetImage,
}

struct ShmSegment {
    seg: shm::Seg,
    file: File,
}

/// Capture of one X display: XDamage on the root window wakes it, pixels come through MIT-SHM
/// (or GetImage), the XFixes cursor is drawn in (docs/protocol.md §3.4: the pointer crosses as
/// pixels; there is no cursor message). It reads the rectangle (0, 0, width, height)
/// of the screen: the whole screen unless [`FrameSource::set_size`] chose a smaller one.
pub struct X11Capture {
    conn: Arc<RustConnection>,
    root: Window,
    screen: (u16, u16),
    width: u16,
    height: u16,
    damage: damage::Damage,
    shm: Option<ShmSegment>,
    wake_tx: SyncSender<Wake>,
    wake_rx: Receiver<Wake>,
    draw_cursor: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for X11Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Capture")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

fn req<E: std::fmt::Display>(e: E) -> CaptureError {
    CaptureError::Request(e.to_string())
}

impl X11Capture {
    /// Set up damage tracking, cursor notifications and (if `mode` is `Shm` and the server
    /// supports fd passing) a shared-memory segment.
    pub fn new(conn: RustConnection, mode: CaptureMode) -> Result<X11Capture, CaptureError> {
        let conn = Arc::new(conn);
        let screen = conn
            .setup()
            .roots
            .first()
            .ok_or_else(|| CaptureError::Unsupported("no screen".into()))?;
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        if screen.root_depth != 24 {
            return Err(CaptureError::Unsupported(format!(
                "depth {}",
                screen.root_depth
            )));
        }
        for ext in [damage::X11_EXTENSION_NAME, xfixes::X11_EXTENSION_NAME] {
            if conn.extension_information(ext).map_err(req)?.is_none() {
                return Err(CaptureError::Unsupported(format!("no {ext} extension")));
            }
        }
        conn.damage_query_version(1, 1)
            .map_err(req)?
            .reply()
            .map_err(req)?;
        conn.xfixes_query_version(5, 0)
            .map_err(req)?
            .reply()
            .map_err(req)?;
        let damage = conn.generate_id().map_err(req)?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY)
            .map_err(req)?
            .check()
            .map_err(req)?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(req)?
            .check()
            .map_err(req)?;
        let shm = match mode {
            CaptureMode::Shm => match attach_shm(&conn, width, height) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "MIT-SHM unavailable, using GetImage");
                    None
                }
            },
            CaptureMode::GetImage => None,
        };
        let (wake_tx, wake_rx) = mpsc::sync_channel(8);
        spawn_event_thread(Arc::clone(&conn), wake_tx.clone())?;
        Ok(X11Capture {
            conn,
            root,
            screen: (width, height),
            width,
            height,
            damage,
            shm,
            wake_tx,
            wake_rx,
            draw_cursor: true,
            scratch: Vec::new(),
        })
    }

    /// Which path reads pixels.
    pub fn mode(&self) -> CaptureMode {
        if self.shm.is_some() {
            CaptureMode::Shm
        } else {
            CaptureMode::GetImage
        }
    }

    /// A handle that wakes the capture loop (the injector uses it after pointer moves).
    pub fn waker(&self) -> SyncSender<Wake> {
        self.wake_tx.clone()
    }

    /// Whether frames get the pointer drawn in (default true).
    pub fn set_draw_cursor(&mut self, on: bool) {
        self.draw_cursor = on;
    }

    /// Read the screen without the cursor.
    pub fn grab(&mut self) -> Result<Frame, CaptureError> {
        let (w, h) = (self.width, self.height);
        let stride = usize::from(w) * 4;
        let len = stride * usize::from(h);
        let capture_us = now_us();
        let bgra = match &self.shm {
            Some(s) => {
                self.conn
                    .shm_get_image(
                        self.root,
                        0,
                        0,
                        w,
                        h,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        s.seg,
                        0,
                    )
                    .map_err(lost)?
                    .reply()
                    .map_err(req)?;
                let mut buf = std::mem::take(&mut self.scratch);
                buf.resize(len, 0);
                s.file.read_exact_at(&mut buf, 0)?;
                buf
            }
            None => {
                let reply = self
                    .conn
                    .get_image(ImageFormat::Z_PIXMAP, self.root, 0, 0, w, h, !0)
                    .map_err(lost)?
                    .reply()
                    .map_err(req)?;
                if reply.data.len() < len {
                    return Err(CaptureError::Unsupported("short GetImage reply".into()));
                }
                reply.data
            }
        };
        Ok(Frame {
            width: w,
            height: h,
            stride,
            bgra,
            capture_us,
        })
    }

    fn cursor(&self) -> Result<CursorImage, CaptureError> {
        let r = self
            .conn
            .xfixes_get_cursor_image()
            .map_err(lost)?
            .reply()
            .map_err(req)?;
        Ok(CursorImage {
            x: r.x.into(),
            y: r.y.into(),
            width: r.width,
            height: r.height,
            xhot: r.xhot,
            yhot: r.yhot,
            pixels: r.cursor_image,
        })
    }
}

fn lost(e: x11rb::errors::ConnectionError) -> CaptureError {
    CaptureError::Connection(e.to_string())
}

impl FrameSource for X11Capture {
    fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    fn recycle(&mut self, bgra: Vec<u8>) {
        // The next picture is read over it: no allocation, no clearing.
        self.scratch = bgra;
    }

    fn set_size(&mut self, width: u16, height: u16) -> Result<(), CaptureError> {
        // The SHM segment is as large as the screen, so any rectangle inside it fits.
        if width == 0 || height == 0 || width > self.screen.0 || height > self.screen.1 {
            return Err(CaptureError::Unsupported(format!(
                "capture {width}x{height} outside the {}x{} screen",
                self.screen.0, self.screen.1
            )));
        }
        self.width = width;
        self.height = height;
        Ok(())
    }

    fn wait_change(&mut self, timeout: Duration) -> Result<Change, CaptureError> {
        let first = match self.wake_rx.recv_timeout(timeout) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) => return Ok(Change::Idle),
            Err(RecvTimeoutError::Disconnected) => Wake::Lost,
        };
        let mut lost = first == Wake::Lost;
        while let Ok(w) = self.wake_rx.try_recv() {
            lost |= w == Wake::Lost;
        }
        if lost {
            return Err(CaptureError::Connection("display closed".into()));
        }
        Ok(Change::Damaged)
    }

    fn capture(&mut self) -> Result<Frame, CaptureError> {
        // Re-arm damage before reading, so drawing during the read wakes us again.
        self.conn
            .damage_subtract(self.damage, NONE, NONE)
            .map_err(lost)?;
        let mut frame = self.grab()?;
        if self.draw_cursor {
            composite_cursor(&mut frame, &self.cursor()?);
        }
        Ok(frame)
    }
}

fn attach_shm(conn: &RustConnection, width: u16, height: u16) -> Result<ShmSegment, CaptureError> {
    if conn
        .extension_information(shm::X11_EXTENSION_NAME)
        .map_err(req)?
        .is_none()
    {
        return Err(CaptureError::Unsupported("no MIT-SHM".into()));
    }
    let v = conn
        .shm_query_version()
        .map_err(req)?
        .reply()
        .map_err(req)?;
    if (v.major_version, v.minor_version) < (1, 2) {
        return Err(CaptureError::Unsupported(
            "MIT-SHM < 1.2 (no fd passing)".into(),
        ));
    }
    let len = u64::from(width) * u64::from(height) * 4;
    let fd = memfd_create("tsuitate-capture", MemfdFlags::CLOEXEC).map_err(std::io::Error::from)?;
    ftruncate(&fd, len).map_err(std::io::Error::from)?;
    let server_fd = fd.try_clone()?;
    let seg = conn.generate_id().map_err(req)?;
    conn.shm_attach_fd(seg, server_fd, false)
        .map_err(req)?
        .check()
        .map_err(req)?;
    Ok(ShmSegment {
        seg,
        file: File::from(fd),
    })
}

/// Forward damage and cursor events as wake-ups; report `Lost` when the connection ends.
fn spawn_event_thread(conn: Arc<RustConnection>, tx: SyncSender<Wake>) -> Result<(), CaptureError> {
    std::thread::Builder::new()
        .name("x11-events".into())
        .spawn(move || loop {
            match conn.wait_for_event() {
                Ok(Event::DamageNotify(_)) | Ok(Event::XfixesCursorNotify(_)) => {
                    match tx.try_send(Wake::Change) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = tx.send(Wake::Lost);
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| CaptureError::Unsupported(format!("thread: {e}")))
}
