//! Ad-hoc measurements on real Chromium (release build):
//! `cargo run --release -p tsuitate-agent --example measure-capture -- [WIDTH HEIGHT]`
//!
//! Prints capture (SHM vs GetImage), BGRA→I420 and encode (screen vs camera) ms/frame and
//! bytes/frame for an idle page and a mouse-wheel scroll. Run as root with a
//! `tsuitate-browser` user, or as an unprivileged user.

use std::time::{Duration, Instant};

use tsuitate_agent::browser::{default_chromium, running_as_root};
use tsuitate_agent::x11::{self, CaptureMode, X11Capture, X11Injector};
use tsuitate_agent::{
    bgra_to_i420, BrowserOptions, BrowserSession, BrowserUser, EncoderSettings, Frame, FrameSource,
    OpenH264Encoder, VideoEncoder, I420,
};
use tsuitate_protocol::InputEvent;

fn page_url() -> String {
    let mut html = String::from(
        "data:text/html;charset=utf-8,<body style='font:16px sans-serif;margin:20px'>",
    );
    for i in 0..400 {
        html.push_str(&format!(
            "<p>{i}. 衝立 tsuitate 画面転送 — The quick brown fox jumps over the lazy dog. 情報セキュリティ基本方針 第{i}条</p>"
        ));
    }
    html.replace(' ', "%20").replace('#', "%23")
}

fn ms(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (w, h) = (
        args.first().copied().unwrap_or(1280),
        args.get(1).copied().unwrap_or(720),
    );
    let user = if running_as_root() {
        Some(BrowserUser::lookup("tsuitate-browser")?)
    } else {
        None
    };
    let opts = BrowserOptions {
        pool: None,
        chromium: default_chromium(),
        xvfb: "/usr/bin/Xvfb".into(),
        start_url: page_url(),
        user,
        proxy: None,
        proxy_bypass: None,
        work_dir: None,
        extra_ca: None,
        // The screen is the measured size: capture reads all of it.
        max_size: (w, h),
        // A measurement of capture and encoding, not of the session's limits.
        cgroups: None,
    };
    let mut browser = BrowserSession::start(&opts, w, h)?;
    std::thread::sleep(Duration::from_secs(6));
    let conn = x11::connect(browser.display(), Duration::from_secs(5))?;
    let mut shm = X11Capture::new(conn, CaptureMode::Shm)?;
    let conn = x11::connect(browser.display(), Duration::from_secs(5))?;
    let mut plain = X11Capture::new(conn, CaptureMode::GetImage)?;
    let conn = x11::connect(browser.display(), Duration::from_secs(5))?;
    let mut inject = X11Injector::new(conn, None)?;
    println!("{w}x{h}, capture mode {:?}", shm.mode());

    let n = 30;
    for (name, cap) in [("shm", &mut shm), ("getimage", &mut plain)] {
        let t = Instant::now();
        for _ in 0..n {
            let f = cap.grab()?;
            cap.recycle(f);
        }
        println!("capture {name}: {:.2} ms", ms(t.elapsed(), n));
    }
    let t = Instant::now();
    for _ in 0..n {
        let f = shm.capture()?;
        shm.recycle(f);
    }
    println!(
        "capture shm + cursor composite: {:.2} ms",
        ms(t.elapsed(), n)
    );

    let idle = shm.grab()?;
    let mut pic = I420::new(w, h);
    let t = Instant::now();
    for _ in 0..n {
        bgra_to_i420(&idle.bgra, idle.stride, &mut pic)?;
    }
    println!("convert yuv BGRA->I420: {:.2} ms", ms(t.elapsed(), n));

    // A scroll: 40 frames, each after one wheel notch.
    inject.apply(&[InputEvent::PointerMove { x: w / 2, y: h / 2 }])?;
    let mut scroll: Vec<Frame> = Vec::new();
    for _ in 0..40 {
        inject.apply(&[InputEvent::Wheel { dx: 0, dy: 1 }])?;
        std::thread::sleep(Duration::from_millis(60));
        scroll.push(shm.grab()?);
    }
    drop(inject);
    browser.stop();

    for (usage, screen) in [("screen", true), ("camera", false)] {
        for kbps in [5000u32] {
            let settings = EncoderSettings {
                width: w,
                height: h,
                fps: 30,
                bitrate_kbps: kbps,
                screen_content: screen,
            };
            let mut enc = OpenH264Encoder::new(settings)?;
            bgra_to_i420(&idle.bgra, idle.stride, &mut pic)?;
            let first = enc.encode(&pic, true)?.map(|a| a.data.len()).unwrap_or(0);
            let (mut bytes, mut sent) = (0usize, 0usize);
            let t = Instant::now();
            for _ in 0..n {
                if let Some(au) = enc.encode(&pic, false)? {
                    bytes += au.data.len();
                    sent += 1;
                }
            }
            let idle_ms = ms(t.elapsed(), n);
            let idle_b = bytes / sent.max(1);
            let (mut bytes, mut sent, mut skipped) = (0usize, 0usize, 0usize);
            let t = Instant::now();
            for f in &scroll {
                bgra_to_i420(&f.bgra, f.stride, &mut pic)?;
                match enc.encode(&pic, false)? {
                    Some(au) => {
                        bytes += au.data.len();
                        sent += 1;
                    }
                    None => skipped += 1,
                }
            }
            let scroll_ms = ms(t.elapsed(), scroll.len());
            println!(
                "encode {usage} @{kbps}kbps: IDR {first} B; idle {idle_ms:.2} ms {idle_b} B/frame; \
                 scroll {scroll_ms:.2} ms (incl. convert) {} B/frame, {skipped} skipped",
                bytes / sent.max(1)
            );
        }
    }
    Ok(())
}
