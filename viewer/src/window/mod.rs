//! The window mode (winit + softbuffer). It stores nothing on disk.

pub mod app;
pub mod input;
pub mod login;
pub mod overlay;
pub mod scale;
pub mod starter;
pub mod text;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use winit::event_loop::EventLoop;

use crate::config::Settings;
use crate::outcome::ExitCode;
use crate::pipeline;
use app::App;
use starter::{Starter, UserEvent};

/// Run the window until the user closes it. Without a password the window asks for one. The
/// exit code tells how the last session ended.
pub fn run(
    settings: Settings,
    password: Option<String>,
    runtime: tokio::runtime::Runtime,
) -> ExitCode {
    let event_loop = match EventLoop::<UserEvent>::with_user_event().build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tsuitate-viewer: no display for a window ({e}); use --headless");
            return ExitCode::Internal;
        }
    };
    let cfg = settings.client_config(String::new());
    let picture_pending = Arc::new(AtomicBool::new(false));
    let proxy = event_loop.create_proxy();
    let pending = picture_pending.clone();
    let on_picture = Box::new(move || {
        // One wake-up per redraw: pictures that arrive before it are simply newer.
        if !pending.swap(true, Ordering::AcqRel) {
            let _ = proxy.send_event(UserEvent::Picture);
        }
    });
    let proxy = event_loop.create_proxy();
    let events = Box::new(move |ev| {
        let _ = proxy.send_event(UserEvent::Session(ev));
    });
    let (pipe, driver, decode_thread) =
        match pipeline::start(cfg.limits.clone(), on_picture, events) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("tsuitate-viewer: {e}");
                return ExitCode::Internal;
            }
        };
    let starter = Starter::new(
        runtime.handle().clone(),
        cfg,
        settings.reconnect_window,
        driver,
        event_loop.create_proxy(),
    );
    let mut app = App::new(
        settings.lang,
        settings.scale,
        settings.user.clone(),
        pipe,
        picture_pending,
        starter,
        password,
    );
    if let Err(e) = event_loop.run_app(&mut app) {
        eprintln!("tsuitate-viewer: {e}");
        return ExitCode::Internal;
    }
    let code = app.exit_code;
    drop(app);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let _ = decode_thread.join();
    code
}
