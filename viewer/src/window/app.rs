//! The window: winit 0.30 `ApplicationHandler` + softbuffer. The newest decoded picture is drawn
//! on each redraw (the decoder wakes the loop once per picture, coalesced); input is batched
//! per loop turn; window resizes become a debounced `Resize` request.

use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tsuitate_protocol::{Limits, Reason, ViewerToGateway, MIN_DIMENSION};
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, Ime, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow};
use winit::keyboard::{KeyCode as WKey, PhysicalKey};
use winit::window::{Window, WindowId};

use crate::args::ScaleArg;
use crate::i18n::{
    error_message, reason_message, status_message, timeout_warning_message, Lang, Status,
};
use crate::outcome::{exit_code_for, ExitCode};
use crate::pipeline::Pipeline;
use crate::session::{SessionDriver, SessionEnd, SessionEvent};
use crate::window::input::InputState;
use crate::window::login::{FormAction, LoginForm};
use crate::window::overlay;
use crate::window::scale::{blit, Viewport};
use crate::window::starter::{Starter, UserEvent};
use crate::window::text::TextRenderer;

/// How long the window size must be stable before a `Resize` is requested.
const RESIZE_DEBOUNCE: Duration = Duration::from_millis(400);
/// How long to wait for the gateway after Logout when the window is closed.
const QUIT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Login(LoginForm),
    Connecting,
    Reconnecting,
    Live,
}

type Surface = softbuffer::Surface<Rc<Window>, Rc<Window>>;

/// The window application.
pub struct App {
    lang: Lang,
    user: String,
    starter: Starter,
    filter: ScaleArg,
    pipe: Pipeline,
    picture_pending: Arc<AtomicBool>,
    window: Option<Rc<Window>>,
    surface: Option<Surface>,
    text: Option<TextRenderer>,
    phase: Phase,
    session_size: Option<(u16, u16)>,
    sized_once: bool,
    viewport: Viewport,
    drawn_frame: (u32, u32),
    input: InputState,
    overlay: bool,
    resize_at: Option<Instant>,
    quit_at: Option<Instant>,
    overlay_at: Option<Instant>,
    /// A timeout warning from the gateway, shown over the picture (an idle one until input).
    warning: Option<(String, tsuitate_protocol::TimeoutKind)>,
    /// The exit code when the loop ends.
    pub exit_code: ExitCode,
}

impl App {
    /// A new app over a started pipeline. Without a password it asks for one in the window.
    pub fn new(
        lang: Lang,
        filter: ScaleArg,
        user: String,
        pipe: Pipeline,
        picture_pending: Arc<AtomicBool>,
        mut starter: Starter,
        password: Option<String>,
    ) -> App {
        let started = password.is_some_and(|p| starter.start(p));
        let phase = if started {
            Phase::Connecting
        } else {
            Phase::Login(LoginForm::new(&user, None))
        };
        App {
            lang,
            user,
            starter,
            filter,
            pipe,
            picture_pending,
            window: None,
            surface: None,
            text: TextRenderer::load(None),
            phase,
            session_size: None,
            sized_once: false,
            viewport: Viewport::default(),
            drawn_frame: (0, 0),
            input: InputState::default(),
            overlay: false,
            resize_at: None,
            quit_at: None,
            overlay_at: None,
            warning: None,
            exit_code: ExitCode::Ok,
        }
    }

    fn redraw(&self) {
        if let Some(w) = &self.window {
            w.request_redraw();
        }
    }

    fn message(&self) -> Option<String> {
        match &self.phase {
            Phase::Login(form) => Some(form.text(self.lang)),
            Phase::Connecting => Some(status_message(self.lang, Status::Connecting).into()),
            Phase::Reconnecting => Some(status_message(self.lang, Status::Reconnecting).into()),
            Phase::Live if self.pipe.slot.latest().is_none() => {
                Some(status_message(self.lang, Status::WaitingForPicture).into())
            }
            Phase::Live => None,
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        if let Some(w) = &self.window {
            let title = match self.message() {
                Some(m) => format!("tsuitate — {}", m.lines().next().unwrap_or("")),
                None => "tsuitate".to_string(),
            };
            w.set_title(&title);
        }
        self.redraw();
    }

    fn render(&mut self) {
        let msg = self.message().unwrap_or_default();
        let (Some(window), Some(surface)) = (&self.window, &mut self.surface) else {
            return;
        };
        let size = window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return;
        };
        if surface.resize(w, h).is_err() {
            return;
        }
        let Ok(mut buf) = surface.buffer_mut() else {
            return;
        };
        let (dw, dh) = (w.get(), h.get());
        let frame = self.pipe.slot.latest();
        match (&self.phase, frame) {
            (Phase::Live, Some(f)) => {
                let vp = Viewport::fit(f.width, f.height, dw, dh);
                if vp.w != dw || vp.h != dh {
                    buf.fill(0);
                }
                blit(&f.rgb, f.width, f.height, &mut buf, dw, vp, self.filter);
                self.viewport = vp;
                self.drawn_frame = (f.width, f.height);
                if let (true, Some(text)) = (self.overlay, &self.text) {
                    let lines = overlay::lines(&self.pipe.stats, self.pipe.clock.best_rtt_us());
                    overlay::draw(text, &mut buf, dw, dh, &lines);
                }
                if let (Some((warning, _)), Some(text)) = (&self.warning, &self.text) {
                    overlay::draw_banner(text, &mut buf, dw, dh, warning);
                }
            }
            _ => {
                overlay::draw_message(self.text.as_ref(), &mut buf, dw, dh, &msg);
            }
        }
        let _ = buf.present();
    }

    fn flush_input(&mut self) {
        // Any input resets the idle timeout: its warning goes.
        if self.input.has_pending()
            && matches!(
                self.warning,
                Some((_, tsuitate_protocol::TimeoutKind::Idle))
            )
        {
            self.warning = None;
            self.redraw();
        }
        let max = Limits::default().max_events_per_message;
        while self.input.has_pending() {
            let batch = self.input.take_batch(max);
            match self.pipe.commands.try_send(ViewerToGateway::Input(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(ViewerToGateway::Input(batch))) => {
                    self.input.put_back(batch);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    fn request_resize(&mut self) {
        let (Some(window), Phase::Live) = (&self.window, &self.phase) else {
            return;
        };
        let size = window.inner_size();
        let limits = Limits::default();
        // Even sizes within the limits (H.264 4:2:0 needs even dimensions).
        let clamp = |v: u32, max: u16| {
            let v = v.clamp(u32::from(MIN_DIMENSION), u32::from(max)) & !1;
            u16::try_from(v).unwrap_or(max)
        };
        let (width, height) = (
            clamp(size.width, limits.max_width),
            clamp(size.height, limits.max_height),
        );
        if self.session_size != Some((width, height)) {
            let _ = self
                .pipe
                .commands
                .try_send(ViewerToGateway::Resize { width, height });
        }
    }

    fn on_session(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Connecting { .. } if self.phase == Phase::Reconnecting => {}
            SessionEvent::Connecting { .. } => self.set_phase(Phase::Connecting),
            SessionEvent::Reconnecting => self.set_phase(Phase::Reconnecting),
            SessionEvent::TimeoutWarning { kind, seconds } => {
                self.warning = Some((timeout_warning_message(self.lang, kind, seconds), kind));
                self.redraw();
            }
            SessionEvent::Ready { width, height, .. } => {
                self.session_size = Some((width, height));
                if !self.sized_once {
                    self.sized_once = true;
                    if let Some(w) = &self.window {
                        let _ = w.request_inner_size(PhysicalSize::new(
                            u32::from(width),
                            u32::from(height),
                        ));
                    }
                }
                self.set_phase(Phase::Live);
            }
        }
    }

    fn on_end(
        &mut self,
        end: SessionEnd,
        driver: Option<SessionDriver>,
        event_loop: &ActiveEventLoop,
    ) {
        if let Some(d) = driver {
            self.starter.give_back(d);
        }
        let (msg, code) = match &end {
            SessionEnd::Bye(r) => (
                reason_message(self.lang, *r).to_string(),
                ExitCode::SessionEnded,
            ),
            SessionEnd::LoggedOut => (
                reason_message(self.lang, Reason::Logout).to_string(),
                ExitCode::Ok,
            ),
            SessionEnd::Closed => (String::new(), ExitCode::Ok),
            SessionEnd::Error(e) => (error_message(self.lang, e), exit_code_for(e)),
        };
        tracing::info!(end = %end.name(), "session ended");
        if self.quit_at.is_some() {
            event_loop.exit();
            return;
        }
        self.exit_code = code;
        // Show why, and let the user log in again in the same window.
        let error = (!msg.is_empty()).then_some(msg);
        self.set_phase(Phase::Login(LoginForm::new(&self.user, error)));
    }

    fn pointer_to_frame(&self, x: f64, y: f64) -> Option<(u16, u16)> {
        let (fw, fh) = self.drawn_frame;
        (fw > 0 && fh > 0).then(|| self.viewport.to_frame(x, y, fw, fh))
    }
}

impl ApplicationHandler<UserEvent> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attrs = Window::default_attributes()
            .with_title("tsuitate")
            .with_inner_size(PhysicalSize::new(1280u32, 720u32));
        let window = match event_loop.create_window(attrs) {
            Ok(w) => Rc::new(w),
            Err(e) => {
                eprintln!("tsuitate-viewer: cannot open a window: {e}");
                self.exit_code = ExitCode::Internal;
                event_loop.exit();
                return;
            }
        };
        window.set_ime_allowed(true);
        let surface = softbuffer::Context::new(window.clone())
            .and_then(|ctx| softbuffer::Surface::new(&ctx, window.clone()));
        match surface {
            Ok(s) => self.surface = Some(s),
            Err(e) => {
                eprintln!("tsuitate-viewer: cannot draw into the window: {e}");
                self.exit_code = ExitCode::Internal;
                event_loop.exit();
                return;
            }
        }
        self.window = Some(window);
        let phase = self.phase.clone();
        self.set_phase(phase);
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UserEvent) {
        match event {
            UserEvent::Picture => {
                self.picture_pending.store(false, Ordering::Release);
                if self.phase == Phase::Live && self.drawn_frame == (0, 0) {
                    self.set_phase(Phase::Live);
                }
                self.redraw();
            }
            UserEvent::Session(ev) => self.on_session(ev),
            UserEvent::Ended(end, driver) => self.on_end(end, driver, event_loop),
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        let live = self.phase == Phase::Live;
        match event {
            WindowEvent::CloseRequested => {
                if live && self.quit_at.is_none() {
                    let _ = self.pipe.commands.try_send(ViewerToGateway::Logout);
                    self.quit_at = Some(Instant::now() + QUIT_WAIT);
                } else {
                    event_loop.exit();
                }
            }
            WindowEvent::RedrawRequested => self.render(),
            WindowEvent::Resized(_) => {
                if live {
                    self.resize_at = Some(Instant::now() + RESIZE_DEBOUNCE);
                }
                self.redraw();
            }
            WindowEvent::KeyboardInput { event, .. } if matches!(self.phase, Phase::Login(_)) => {
                let Phase::Login(form) = &mut self.phase else {
                    return;
                };
                if let FormAction::Submit(password) = form.key(&event) {
                    if self.starter.start(password) {
                        self.set_phase(Phase::Connecting);
                    }
                } else {
                    let phase = self.phase.clone();
                    self.set_phase(phase);
                }
            }
            WindowEvent::Ime(Ime::Commit(text)) if matches!(self.phase, Phase::Login(_)) => {
                if let Phase::Login(form) = &mut self.phase {
                    form.commit(&text);
                }
                self.redraw();
            }
            WindowEvent::KeyboardInput { event, .. } => {
                if event.physical_key == PhysicalKey::Code(WKey::F12) {
                    if event.state == ElementState::Pressed && !event.repeat {
                        self.overlay = !self.overlay;
                        self.redraw();
                    }
                } else if live {
                    self.input.key(&event);
                }
            }
            WindowEvent::ModifiersChanged(m) => self.input.set_modifiers(m.state()),
            WindowEvent::Ime(Ime::Commit(text)) if live => self.input.commit(&text),
            WindowEvent::CursorMoved { position, .. } if live => {
                if let Some((x, y)) = self.pointer_to_frame(position.x, position.y) {
                    self.input.pointer(x, y);
                }
            }
            WindowEvent::MouseInput { state, button, .. } if live => {
                self.input.button(state, button)
            }
            WindowEvent::MouseWheel { delta, .. } if live => self.input.wheel(delta),
            WindowEvent::Focused(false) => self.input.release_all(),
            _ => {}
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        self.flush_input();
        let now = Instant::now();
        if self.resize_at.is_some_and(|t| t <= now) {
            self.resize_at = None;
            self.request_resize();
        }
        if self.quit_at.is_some_and(|t| t <= now) {
            event_loop.exit();
            return;
        }
        let mut wake: Option<Instant> = [self.resize_at, self.quit_at].into_iter().flatten().min();
        if self.overlay {
            // Refresh the overlay numbers once a second, even on a still screen.
            let next = *self.overlay_at.get_or_insert(now + Duration::from_secs(1));
            if next <= now {
                self.overlay_at = Some(now + Duration::from_secs(1));
                self.redraw();
            }
            wake = [wake, self.overlay_at].into_iter().flatten().min();
        } else {
            self.overlay_at = None;
        }
        if self.input.has_pending() {
            wake = Some(now + Duration::from_millis(10));
        }
        event_loop.set_control_flow(match wake {
            Some(t) => ControlFlow::WaitUntil(t),
            None => ControlFlow::Wait,
        });
    }
}
