//! Starts a session with a password from the login form; the driver comes back when the session
//! ends, so the user can log in again in the same window.

use std::fmt;
use std::time::Duration;

use winit::event_loop::EventLoopProxy;

use crate::client::ClientConfig;
use crate::session::{run_with_reconnect, SessionDriver, SessionEnd, SessionEvent};

/// Events from the connection and decoder threads into the event loop.
pub enum UserEvent {
    /// A new picture is in the slot.
    Picture,
    /// Session progress.
    Session(SessionEvent),
    /// The session is over (no more reconnecting); the driver is handed back.
    Ended(SessionEnd, Option<SessionDriver>),
}

impl fmt::Debug for UserEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserEvent::Picture => f.write_str("Picture"),
            UserEvent::Session(e) => write!(f, "Session({e:?})"),
            UserEvent::Ended(e, _) => write!(f, "Ended({e:?})"),
        }
    }
}

/// Holds what a session needs until the user logs in.
pub struct Starter {
    handle: tokio::runtime::Handle,
    cfg: ClientConfig,
    linger: Duration,
    driver: Option<SessionDriver>,
    proxy: EventLoopProxy<UserEvent>,
}

impl Starter {
    /// A starter; `cfg.password` is replaced on each start.
    pub fn new(
        handle: tokio::runtime::Handle,
        cfg: ClientConfig,
        linger: Duration,
        driver: SessionDriver,
        proxy: EventLoopProxy<UserEvent>,
    ) -> Starter {
        Starter {
            handle,
            cfg,
            linger,
            driver: Some(driver),
            proxy,
        }
    }

    /// Connect and log in with `password`. False if a session is already running.
    pub fn start(&mut self, password: String) -> bool {
        let Some(mut driver) = self.driver.take() else {
            return false;
        };
        // Nothing typed for an earlier session may reach the new one.
        while driver.commands.try_recv().is_ok() {}
        let mut cfg = self.cfg.clone();
        cfg.password = password;
        let proxy = self.proxy.clone();
        let linger = self.linger;
        self.handle.spawn(async move {
            let end = run_with_reconnect(&cfg, &mut driver, linger).await;
            let _ = proxy.send_event(UserEvent::Ended(end, Some(driver)));
        });
        true
    }

    /// The driver of an ended session, for the next login.
    pub fn give_back(&mut self, driver: SessionDriver) {
        self.driver = Some(driver);
    }
}
