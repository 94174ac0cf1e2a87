//! A minimal RFB (VNC) client for the end-to-end benchmark's x11vnc comparison: it asks for
//! ZRLE, keeps one incremental update request outstanding (a viewer that shows every update as
//! soon as it can), reads and discards the updates, and counts the bytes and updates the
//! server sent. RFB 3.8, security type None (RFC 6143).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters the reader thread keeps.
#[derive(Debug, Default)]
pub struct VncCounts {
    /// Every byte read from the server after the handshake.
    pub bytes: AtomicU64,
    /// Framebuffer updates received.
    pub updates: AtomicU64,
}

/// A connected client reading updates on its own thread until dropped.
#[derive(Debug)]
pub struct VncCounter {
    counts: Arc<VncCounts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// A reader that counts what it reads.
struct Counted<'a> {
    stream: &'a mut TcpStream,
    counts: &'a VncCounts,
    stop: &'a AtomicBool,
}

impl Counted<'_> {
    /// Fill `buf`, waiting through read timeouts unless told to stop.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let mut at = 0;
        while at < buf.len() {
            match self.stream.read(&mut buf[at..]) {
                Ok(0) => return Err("the VNC server closed the connection".into()),
                Ok(n) => {
                    at += n;
                    self.counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err("stopped".into());
                    }
                }
                Err(e) => return Err(format!("VNC read: {e}")),
            }
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let mut b = [0u8; 2];
        self.read_exact(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn skip(&mut self, mut n: u64) -> Result<(), String> {
        let mut buf = [0u8; 16384];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// FramebufferUpdateRequest for the whole screen.
fn request(w: u16, h: u16, incremental: bool) -> [u8; 10] {
    let mut m = [0u8; 10];
    m[0] = 3;
    m[1] = u8::from(incremental);
    m[6..8].copy_from_slice(&w.to_be_bytes());
    m[8..10].copy_from_slice(&h.to_be_bytes());
    m
}

impl VncCounter {
    /// Connect to `addr`, negotiate, and start reading.
    pub fn connect(addr: &str) -> Result<VncCounter, String> {
        let mut s = TcpStream::connect(addr).map_err(|e| format!("VNC connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let counts = Arc::new(VncCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (Arc::clone(&counts), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("vnc-client".into())
            .spawn(move || run(&mut s, &c2, &s2))
            .map_err(|e| e.to_string())?;
        Ok(VncCounter {
            counts,
            stop,
            thread: Some(thread),
        })
    }

    /// The counters.
    pub fn counts(&self) -> Arc<VncCounts> {
        Arc::clone(&self.counts)
    }

    /// Stop reading; why the reader ended, if not because it was told to.
    pub fn stop(mut self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) if e != "stopped" => Some(e),
            Some(Err(_)) => Some("the VNC reader panicked".into()),
            _ => None,
        }
    }
}

impl Drop for VncCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(stream: &mut TcpStream, counts: &VncCounts, stop: &AtomicBool) -> Result<(), String> {
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = Counted {
        stream,
        counts,
        stop,
    };
    let mut version = [0u8; 12];
    r.read_exact(&mut version)?;
    if !version.starts_with(b"RFB 003.") {
        return Err(format!("not an RFB server: {version:?}"));
    }
    writer
        .write_all(b"RFB 003.008\n")
        .map_err(|e| e.to_string())?;
    let n = r.u8()?;
    if n == 0 {
        let len = r.u32()?;
        r.skip(u64::from(len))?;
        return Err("the VNC server refused the connection".into());
    }
    let mut types = vec![0u8; usize::from(n)];
    r.read_exact(&mut types)?;
    if !types.contains(&1) {
        return Err(format!("the VNC server wants authentication ({types:?})"));
    }
    writer.write_all(&[1]).map_err(|e| e.to_string())?;
    if r.u32()? != 0 {
        return Err("VNC security handshake failed".into());
    }
    writer.write_all(&[1]).map_err(|e| e.to_string())?; // ClientInit: shared
    let (w, h) = (r.u16()?, r.u16()?);
    let mut format = [0u8; 16];
    r.read_exact(&mut format)?;
    let bytes_per_pixel = u64::from(format[0] / 8).max(1);
    let name_len = r.u32()?;
    r.skip(u64::from(name_len))?;
    // SetEncodings: ZRLE only (Raw is always allowed).
    let mut enc = vec![2u8, 0, 0, 1];
    enc.extend_from_slice(&16i32.to_be_bytes());
    writer.write_all(&enc).map_err(|e| e.to_string())?;
    writer
        .write_all(&request(w, h, false))
        .map_err(|e| e.to_string())?;
    // Everything before the first update is the handshake: count from here.
    counts.bytes.store(0, Ordering::Relaxed);
    loop {
        match r.u8()? {
            0 => {
                r.u8()?;
                let rects = r.u16()?;
                for _ in 0..rects {
                    let (_x, _y, rw, rh) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
                    let encoding = r.u32()? as i32;
                    match encoding {
                        16 => {
                            let len = r.u32()?;
                            r.skip(u64::from(len))?;
                        }
                        0 => r.skip(u64::from(rw) * u64::from(rh) * bytes_per_pixel)?,
                        other => return Err(format!("unexpected VNC encoding {other}")),
                    }
                }
                counts.updates.fetch_add(1, Ordering::Relaxed);
                writer
                    .write_all(&request(w, h, true))
                    .map_err(|e| e.to_string())?;
            }
            1 => {
                r.u8()?;
                let (_first, n) = (r.u16()?, r.u16()?);
                r.skip(u64::from(n) * 6)?;
            }
            2 => {}
            3 => {
                r.skip(3)?;
                let len = r.u32()?;
                r.skip(u64::from(len))?;
            }
            other => return Err(format!("unexpected VNC message {other}")),
        }
    }
}
