//! `tsuitate-viewer`: see docs/viewer.md for usage, the script language, the report and the
//! exit codes.

use std::process::ExitCode as ProcessExit;

use anyhow::Context;
use clap::Parser;
use tsuitate_viewer::args::Args;
use tsuitate_viewer::config::{load_file, FileConfig, Settings, PASSWORD_ENV};
use tsuitate_viewer::i18n::Lang;
use tsuitate_viewer::outcome::ExitCode;
use tsuitate_viewer::script::Script;
use tsuitate_viewer::{headless, i18n};

fn main() -> ProcessExit {
    let args = Args::parse();
    tsuitate_cli::init_logging(args.log_format.unwrap_or_default(), "warn");
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tsuitate-viewer: {e:#}");
            ExitCode::Internal
        }
    };
    ProcessExit::from(code.code() as u8)
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tsuitate-viewer: {msg}");
    ExitCode::Usage
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => match load_file(path) {
            Ok(f) => f,
            Err(e) => return Ok(usage_error(e)),
        },
        None => FileConfig::default(),
    };
    let settings = match Settings::resolve(args, file) {
        Ok(s) => s,
        Err(e) => return Ok(usage_error(e)),
    };
    // Scripts are checked before anything is sent (docs/viewer.md).
    let script = match &settings.headless {
        Some(h) => {
            let text = match std::fs::read_to_string(&h.script) {
                Ok(t) => t,
                Err(e) => return Ok(usage_error(format!("{}: {e}", h.script.display()))),
            };
            let script = match Script::parse(&text) {
                Ok(s) => s,
                Err(e) => return Ok(usage_error(format!("{}:\n{e}", h.script.display()))),
            };
            if script.has_snapshots() {
                let Some(dir) = &h.snapshot_dir else {
                    return Ok(usage_error(
                        "the script takes snapshots: --snapshot-dir DIR is needed",
                    ));
                };
                if let Err(e) = std::fs::create_dir_all(dir) {
                    return Ok(usage_error(format!("{}: {e}", dir.display())));
                }
            }
            Some(script)
        }
        None => None,
    };
    if args.check_config {
        if let Err(e) = tsuitate_viewer::client::quic_client_config(&settings.ca) {
            return Ok(usage_error(e));
        }
        println!("設定は正しいです / configuration OK");
        return Ok(ExitCode::Ok);
    }
    // Headless: the environment or the terminal. Window: the environment, else the window asks.
    let password = match (&settings.headless, std::env::var(PASSWORD_ENV)) {
        (_, Ok(p)) => Some(p),
        (Some(_), Err(_)) => match read_password(settings.lang) {
            Ok(p) => Some(p),
            Err(e) => return Ok(usage_error(e)),
        },
        (None, Err(_)) => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match (&settings.headless, script) {
        (Some(h), Some(script)) => {
            let password = password.unwrap_or_default();
            let report = runtime.block_on(headless::run(&settings, h, &script, password));
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(&h.report, json + "\n")
                .with_context(|| format!("writing {}", h.report.display()))?;
            if let Some(err) = &report.error {
                eprintln!("tsuitate-viewer: {err}");
            }
            let code = exit_from(report.exit_code);
            if let Some(msg) = &report.message {
                eprintln!("{msg}");
            }
            Ok(code)
        }
        _ => Ok(tsuitate_viewer::window::run(settings, password, runtime)),
    }
}

fn exit_from(code: i32) -> ExitCode {
    use ExitCode::*;
    [
        Ok,
        Internal,
        Usage,
        Unreachable,
        Denied,
        LockedOut,
        NoCapacity,
        SessionEnded,
        ScriptFailed,
        Protocol,
        Certificate,
    ]
    .into_iter()
    .find(|c| c.code() == code)
    .unwrap_or(Internal)
}

fn read_password(lang: Lang) -> anyhow::Result<String> {
    let prompt = match lang {
        i18n::Lang::Ja => "パスワード: ",
        i18n::Lang::En => "Password: ",
    };
    rpassword::prompt_password(prompt)
        .with_context(|| format!("no terminal to ask for the password: set {PASSWORD_ENV}"))
}
