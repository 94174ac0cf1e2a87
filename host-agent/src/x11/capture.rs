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
use crate::frame::{now_us, union_range, union_rows, CaptureError, Change, Frame, FrameSource};

/// How many pictures back a reused buffer may be and still be brought up to date row-wise.
const HISTORY: usize = 8;
/// How often a capture reads the whole screen whatever XDamage reported.
const FULL_READ_EVERY: Duration = Duration::from_secs(10);

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
    /// Where XDamage puts what was drawn since the last picture.
    region: xfixes::Region,
    /// The size the SHM segment holds the whole screen at (`None`: read everything next
    /// time). The segment is the screen as last read: only the rows XDamage reports are
    /// asked of the server again.
    segment_size: Option<(u16, u16)>,
    /// The number of the last picture, and the rows read into the segment for each of the
    /// last [`HISTORY`] pictures: a buffer given back that held picture `n` needs those rows
    /// of the pictures after `n` (and the rows drawn over it) read again, nothing else.
    seq: u64,
    history: std::collections::VecDeque<(u64, (u16, u16))>,
    /// A picture given back, for its buffer.
    recycled: Option<Frame>,
    /// When the whole screen was last read into the segment.
    last_full: std::time::Instant,
    /// The rows the pointer was drawn on in the last picture.
    cursor_rows: Option<(u16, u16)>,
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
        let region = conn.generate_id().map_err(req)?;
        conn.xfixes_create_region(region, &[])
            .map_err(req)?
            .check()
            .map_err(req)?;
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
            region,
            segment_size: None,
            seq: 0,
            history: std::collections::VecDeque::new(),
            recycled: None,
            last_full: std::time::Instant::now(),
            cursor_rows: None,
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

    /// A picture of the capture rectangle, `damaged` being what XDamage reported since the
    /// last one.
    fn capture_frame(
        &mut self,
        damaged: x11rb::protocol::xproto::Rectangle,
    ) -> Result<Frame, CaptureError> {
        let (w, h) = (self.width, self.height);
        let stride = usize::from(w) * 4;
        let Some(segment) = &self.shm else {
            // GetImage: the whole screen every time.
            let frame = self.grab()?;
            return self.finish(frame, None);
        };
        let capture_us = now_us();
        let seq = self.seq + 1;
        // 1. The segment: the rows drawn since the last picture (everything the first time
        //    and after a resize).
        // Now and then everything is read again, should XDamage ever miss a drawing.
        if self.last_full.elapsed() >= FULL_READ_EVERY {
            self.segment_size = None;
        }
        let (damage, changed) = if self.segment_size == Some((w, h)) {
            let top = i32::from(damaged.y).clamp(0, i32::from(h)) as u16;
            let bottom =
                (i32::from(damaged.y) + i32::from(damaged.height)).clamp(0, i32::from(h)) as u16;
            ((top, bottom.max(top)), Some((top, bottom.max(top))))
        } else {
            self.history.clear();
            self.last_full = std::time::Instant::now();
            ((0, h), None)
        };
        if damage.1 > damage.0 {
            let offset = u32::try_from(stride * usize::from(damage.0))
                .map_err(|_| CaptureError::Unsupported("screen too large".into()))?;
            self.conn
                .shm_get_image(
                    self.root,
                    0,
                    damage.0 as i16,
                    w,
                    damage.1 - damage.0,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    segment.seg,
                    offset,
                )
                .map_err(lost)?
                .reply()
                .map_err(req)?;
        }
        self.segment_size = Some((w, h));
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((seq, damage));
        // 2. The picture's buffer: a picture given back is brought up to date with the rows
        //    read into the segment since it was taken and the rows drawn over it; any other
        //    buffer is read whole.
        let len = stride * usize::from(h);
        let (mut bgra, rows) = match self.recycled.take() {
            Some(old)
                if (old.width, old.height) == (w, h)
                    && old.bgra.len() == len
                    && old.seq > 0
                    && old.seq < seq =>
            {
                let (count, rows) = self
                    .history
                    .iter()
                    .filter(|(n, _)| *n > old.seq)
                    .fold((0u64, old.overlay_rows), |(count, acc), (_, r)| {
                        (count + 1, union_range(acc, *r))
                    });
                let complete = count == seq - old.seq;
                (old.bgra, if complete { rows } else { (0, h) })
            }
            Some(old) => (old.bgra, (0, h)),
            None => (std::mem::take(&mut self.scratch), (0, h)),
        };
        bgra.resize(len, 0);
        let rows = (rows.0.min(h), rows.1.min(h));
        if rows.1 > rows.0 {
            let (a, b) = (stride * usize::from(rows.0), stride * usize::from(rows.1));
            segment.file.read_exact_at(&mut bgra[a..b], a as u64)?;
        }
        self.seq = seq;
        let frame = Frame {
            width: w,
            height: h,
            stride,
            bgra,
            capture_us,
            changed_rows: None,
            seq,
            overlay_rows: (0, 0),
        };
        self.finish(frame, changed)
    }

    /// Draw the pointer into a picture read without it; `changed`: the rows read since the
    /// last picture (`None`: unknown).
    fn finish(
        &mut self,
        mut frame: Frame,
        changed: Option<(u16, u16)>,
    ) -> Result<Frame, CaptureError> {
        let h = frame.height;
        let mut cursor_rows = (0, 0);
        if self.draw_cursor {
            let cursor = self.cursor()?;
            let top = (cursor.y - i32::from(cursor.yhot)).clamp(0, i32::from(h));
            let bottom = (top + i32::from(cursor.height)).clamp(0, i32::from(h));
            cursor_rows = (top as u16, bottom as u16);
            composite_cursor(&mut frame, &cursor);
        }
        frame.overlay_rows = cursor_rows;
        // Against the last picture: what was drawn, and where the pointer was and is.
        let pointer = union_range(self.cursor_rows.unwrap_or((0, 0)), cursor_rows);
        frame.changed_rows = union_rows(changed, Some(pointer));
        self.cursor_rows = Some(cursor_rows);
        Ok(frame)
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
                let mut buf = match self.recycled.take() {
                    Some(old) => old.bgra,
                    None => std::mem::take(&mut self.scratch),
                };
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
            changed_rows: None,
            seq: 0,
            overlay_rows: (0, 0),
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

    fn recycle(&mut self, frame: Frame) {
        // The next picture is read over it: no allocation, no clearing, and only the rows
        // that changed since it was taken.
        self.recycled = Some(frame);
    }

    fn set_size(&mut self, width: u16, height: u16) -> Result<(), CaptureError> {
        // A new size is a new layout of the segment: everything is read again.
        self.segment_size = None;
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
        // Re-arm damage before reading, so drawing during the read wakes us again; what was
        // drawn until now lands in `region`.
        self.conn
            .damage_subtract(self.damage, NONE, self.region)
            .map_err(lost)?;
        let damaged = self
            .conn
            .xfixes_fetch_region(self.region)
            .map_err(lost)?
            .reply()
            .map_err(req)?
            .extents;
        self.capture_frame(damaged)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use x11rb::protocol::xproto::{ChangeGCAux, CreateGCAux, Rectangle};

    /// A bare Xvfb (no browser), stopped when dropped.
    struct Display {
        child: std::process::Child,
        name: String,
    }

    impl Display {
        fn start(width: u16, height: u16) -> Display {
            let mut child = std::process::Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0"])
                .arg(format!("{width}x{height}x24"))
                .args(["-nolisten", "tcp"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("Xvfb (scripts/install-deps.sh installs it)");
            let mut line = String::new();
            let out = child.stdout.take().expect("stdout");
            BufReader::new(out)
                .read_line(&mut line)
                .expect("display number");
            Display {
                child,
                name: format!(":{}", line.trim()),
            }
        }

        fn connect(&self) -> RustConnection {
            RustConnection::connect(Some(&self.name))
                .expect("connect")
                .0
        }
    }

    impl Drop for Display {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Fill `r` on the root window with `colour`, and wait until the server has done it.
    fn fill(conn: &RustConnection, root: Window, gc: u32, colour: u32, r: Rectangle) {
        conn.change_gc(gc, &ChangeGCAux::new().foreground(colour))
            .expect("change gc");
        conn.poly_fill_rectangle(root, gc, &[r]).expect("fill");
        conn.get_input_focus().expect("sync").reply().expect("sync");
    }

    #[test]
    fn only_damaged_rows_are_read_and_the_picture_is_the_whole_screen() {
        let display = Display::start(640, 480);
        let mut capture = X11Capture::new(display.connect(), CaptureMode::Shm).expect("capture");
        assert_eq!(capture.mode(), CaptureMode::Shm);
        capture.set_draw_cursor(false);
        let painter = display.connect();
        let root = painter.setup().roots[0].root;
        let gc = painter.generate_id().expect("id");
        painter
            .create_gc(gc, root, &CreateGCAux::new().foreground(0))
            .expect("gc");

        let first = capture.capture().expect("first picture");
        assert_eq!(first.changed_rows, None, "the first picture is read whole");
        let steps = [
            (
                0x00ff_0000,
                Rectangle {
                    x: 10,
                    y: 100,
                    width: 200,
                    height: 40,
                },
            ),
            (
                0x0000_ff00,
                Rectangle {
                    x: 300,
                    y: 7,
                    width: 31,
                    height: 3,
                },
            ),
            (
                0x0000_00ff,
                Rectangle {
                    x: 600,
                    y: 470,
                    width: 100,
                    height: 30,
                },
            ),
            (
                0x00ff_ff00,
                Rectangle {
                    x: 0,
                    y: 200,
                    width: 640,
                    height: 90,
                },
            ),
            (
                0x0000_ffff,
                Rectangle {
                    x: 5,
                    y: 60,
                    width: 10,
                    height: 10,
                },
            ),
        ];
        // Pictures given back as the pipeline gives them: the one before last, with something
        // drawn over it (as the pointer or the watermark is) in its overlay rows.
        let mut kept = vec![first];
        for (i, (colour, r)) in steps.into_iter().enumerate() {
            if kept.len() >= 2 {
                let mut old = kept.remove(0);
                if i % 2 == 0 {
                    let stride = old.stride;
                    old.bgra[300 * stride..310 * stride].fill(0x77);
                    old.overlay_rows = (300, 310);
                }
                capture.recycle(old);
            }
            fill(&painter, root, gc, colour, r);
            let f = capture.capture().expect("picture");
            let whole = capture.grab().expect("whole screen");
            assert!(
                f.bgra == whole.bgra,
                "the picture equals the screen after {r:?}"
            );
            let (top, bottom) = f.changed_rows.expect("changed rows known");
            let (r0, r1) = (r.y as u16, (r.y as u16 + r.height).min(480));
            assert!(
                top <= r0 && bottom >= r1,
                "{top}..{bottom} covers {r0}..{r1}"
            );
            assert!(bottom - top < 480, "not every row: {top}..{bottom}");
            kept.push(f);
        }
        // Nothing drawn: nothing changed.
        let f = capture.capture().expect("picture");
        assert!(
            f.changed_rows.is_some_and(|(a, b)| a >= b),
            "{:?}",
            f.changed_rows
        );
        // A new size reads everything again.
        capture.set_size(240, 320).expect("size");
        let f = capture.capture().expect("picture");
        assert_eq!(f.changed_rows, None);
        assert!(f.bgra == capture.grab().expect("whole").bgra);
        // A picture of another shape with as many pixels, given back after the next resize
        // (something drawn over its rows 300..310, beyond the new height), is read whole.
        let mut tall = capture.capture().expect("picture");
        tall.overlay_rows = (300, 310);
        capture.set_size(320, 240).expect("size");
        let wide = capture.capture().expect("picture");
        capture.recycle(tall);
        fill(
            &painter,
            root,
            gc,
            0x0012_3456,
            Rectangle {
                x: 0,
                y: 0,
                width: 50,
                height: 50,
            },
        );
        let f = capture.capture().expect("picture");
        assert!(f.bgra == capture.grab().expect("whole").bgra);
        drop(wide);
    }
}
