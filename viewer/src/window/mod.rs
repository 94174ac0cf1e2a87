//! The window mode (winit + softbuffer).

use crate::config::Settings;
use crate::outcome::ExitCode;

/// Run the window until the user quits or the session ends.
pub fn run(_settings: Settings, _password: String, _runtime: tokio::runtime::Runtime) -> ExitCode {
    eprintln!("window mode: not built yet");
    ExitCode::Internal
}
