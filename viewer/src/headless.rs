//! Headless mode: connect, play a script, write a report (docs/viewer.md).

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tsuitate_protocol::{InputEvent, Limits, ViewerToGateway};

use crate::config::{HeadlessSettings, Settings};
use crate::i18n::{error_message, reason_message, Lang};
use crate::outcome::{exit_code_for, ExitCode};
use crate::pipeline::{self, Pipeline};
use crate::report::Report;
use crate::script::{Action, Script, Step};
use crate::session::{run_with_reconnect, SessionEnd, SessionEvent};
use crate::snapshot::write_png;

/// How long a `snapshot` waits for the first picture.
const FIRST_PICTURE_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for the gateway's goodbye after `Logout`.
const LOGOUT_WAIT: Duration = Duration::from_secs(5);

/// A failed script step.
struct StepFailure {
    line: usize,
    message: String,
}

/// Run the script against the gateway and return the report (with its exit code).
pub async fn run(
    settings: &Settings,
    h: &HeadlessSettings,
    script: &Script,
    password: String,
) -> Report {
    let cfg = settings.client_config(password);
    let (ready_tx, mut ready_rx) = mpsc::channel::<SessionEvent>(16);
    let started = pipeline::start(
        cfg.limits.clone(),
        Box::new(|| {}),
        Box::new(move |ev| {
            let _ = ready_tx.try_send(ev);
        }),
    );
    let (pipe, mut driver, decode_thread) = match started {
        Ok(p) => p,
        Err(e) => return failed_report(ExitCode::Internal, "decoder", e.to_string()),
    };
    let linger = settings.reconnect_window;
    let mut session: JoinHandle<SessionEnd> =
        tokio::spawn(async move { run_with_reconnect(&cfg, &mut driver, linger).await });

    // Wait for the session to be ready (or to fail).
    let ready = loop {
        tokio::select! {
            ev = ready_rx.recv() => match ev {
                Some(SessionEvent::Ready { .. }) => break None,
                Some(_) => continue,
                None => break Some((&mut session).await.unwrap_or(SessionEnd::Closed)),
            },
            end = &mut session => break Some(end.unwrap_or(SessionEnd::Closed)),
        }
    };
    let mut report;
    if let Some(end) = ready {
        report = finish(settings.lang, &pipe, end, false, None);
    } else {
        let outcome = tokio::select! {
            r = play(&pipe, h, script) => Ok(r),
            end = &mut session => Err(end.unwrap_or(SessionEnd::Closed)),
        };
        match outcome {
            Ok(result) => {
                let completed = result.is_ok();
                let end = close_session(&pipe, session, h.keep_session).await;
                report = finish(settings.lang, &pipe, end, completed, result.err());
            }
            Err(end) => report = finish(settings.lang, &pipe, end, false, None),
        }
    }
    drop(pipe);
    // The decode thread ends once the driver (and its decoder input) is gone.
    let _ = tokio::task::spawn_blocking(move || decode_thread.join()).await;
    report.clock_offset_ms = report.clock_offset_ms.round();
    report
}

async fn close_session(
    pipe: &Pipeline,
    mut session: JoinHandle<SessionEnd>,
    keep: bool,
) -> SessionEnd {
    if keep {
        session.abort();
        return SessionEnd::Closed;
    }
    let _ = pipe.commands.send(ViewerToGateway::Logout).await;
    match tokio::time::timeout(LOGOUT_WAIT, &mut session).await {
        Ok(end) => end.unwrap_or(SessionEnd::Closed),
        Err(_) => {
            session.abort();
            SessionEnd::LoggedOut
        }
    }
}

fn failed_report(code: ExitCode, reason: &str, error: String) -> Report {
    let mut r = crate::report::Stats::default().summary();
    r.exit_code = code.code();
    r.end_reason = reason.into();
    r.error = Some(error);
    r
}

fn finish(
    lang: Lang,
    pipe: &Pipeline,
    end: SessionEnd,
    completed: bool,
    failure: Option<StepFailure>,
) -> Report {
    let mut r = pipe.stats.summary();
    r.script_completed = completed;
    r.end_reason = end.name();
    r.clock_offset_ms = pipe.clock.offset_us() as f64 / 1000.0;
    let code = if completed {
        ExitCode::Ok
    } else if let Some(f) = failure {
        r.error = Some(format!("line {}: {}", f.line, f.message));
        ExitCode::ScriptFailed
    } else {
        match &end {
            SessionEnd::Error(e) => {
                r.error = Some(e.to_string());
                r.message = Some(error_message(lang, e));
                exit_code_for(e)
            }
            SessionEnd::Bye(reason) => {
                r.message = Some(reason_message(lang, *reason).into());
                ExitCode::SessionEnded
            }
            _ => ExitCode::SessionEnded,
        }
    };
    r.exit_code = code.code();
    r
}

/// Play every step; the first failing step stops the script.
async fn play(pipe: &Pipeline, h: &HeadlessSettings, script: &Script) -> Result<(), StepFailure> {
    let mut baseline = pipe.slot.count();
    for step in &script.steps {
        tracing::debug!(line = step.line, "script step");
        let fail = |message: String| StepFailure {
            line: step.line,
            message,
        };
        match &step.action {
            Action::Wait(d) => tokio::time::sleep(*d).await,
            Action::Snapshot(name) => snapshot(pipe, h.snapshot_dir.clone(), name, step)
                .await
                .map_err(fail)?,
            Action::ExpectChange(d) => {
                expect_change(pipe, baseline, *d).await.map_err(fail)?;
                baseline = pipe.slot.count();
            }
            action => {
                baseline = pipe.slot.count();
                send_input(pipe, action.input_events())
                    .await
                    .map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Send events in batches of at most the protocol's per-message limit.
pub async fn send_input(pipe: &Pipeline, events: Vec<InputEvent>) -> Result<(), String> {
    let max = Limits::default().max_events_per_message;
    for chunk in events.chunks(max) {
        pipe.commands
            .send(ViewerToGateway::Input(chunk.to_vec()))
            .await
            .map_err(|_| "the session has ended".to_string())?;
    }
    Ok(())
}

async fn expect_change(pipe: &Pipeline, baseline: u64, d: Duration) -> Result<(), String> {
    let mut rx = pipe.slot.subscribe();
    let waited = tokio::time::timeout(d, rx.wait_for(|&c| c > baseline)).await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        _ => Err(format!("no new frame within {} ms", d.as_millis())),
    }
}

async fn snapshot(
    pipe: &Pipeline,
    dir: Option<PathBuf>,
    name: &str,
    step: &Step,
) -> Result<(), String> {
    let dir = dir.ok_or_else(|| "snapshot needs --snapshot-dir".to_string())?;
    let mut rx = pipe.slot.subscribe();
    let _ = tokio::time::timeout(FIRST_PICTURE_WAIT, rx.wait_for(|&c| c > 0)).await;
    let frame = pipe
        .slot
        .latest()
        .ok_or_else(|| "no frame has been decoded yet".to_string())?;
    let path = dir.join(name);
    tracing::debug!(line = step.line, "writing snapshot");
    tokio::task::spawn_blocking(move || write_png(&frame, &path).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}
