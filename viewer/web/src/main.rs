//! `tsuitate-web`: the web viewer (docs/viewer.md, "Web viewer").

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tsuitate_cli::LogFormat;
use tsuitate_protocol::Limits;
use tsuitate_web::config::WebConfig;
use tsuitate_web::http::{self, App};
use tsuitate_web::rtc::RtcSettings;
use tsuitate_web::session::{Counters, SessionContext};

/// The tsuitate web viewer: staff open it in Edge or Chrome; nothing is installed on their PC.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Check the configuration (files, addresses, certificates) and exit.
    #[arg(long)]
    check_config: bool,
    /// Write the listening address as JSON to this file once ready.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tsuitate_cli::init_logging(args.log_format.unwrap_or_default(), "info");
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tsuitate-web: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let cfg = match WebConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tsuitate-web: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let tls = match http::tls_config(&cfg) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tsuitate-web: HTTPS の証明書を使えません / cannot use the HTTPS certificate: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let identity = cfg.front_identity();
    let identity = identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let quic = match tsuitate_viewer::client::quic_client_config_with(&cfg.ca, identity) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("tsuitate-web: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.check_config {
        println!("設定は正しいです / configuration OK");
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(cfg, tls, quic, args.ready_file.as_deref()))
}

async fn serve(
    cfg: WebConfig,
    tls: rustls::ServerConfig,
    quic: quinn::ClientConfig,
    ready_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let rtc = RtcSettings::bind(cfg.rtc_ip, cfg.rtc_port)
        .await
        .with_context(|| format!("WebRTC UDP port {}:{}", cfg.rtc_ip, cfg.rtc_port))?;
    let rtc_addr = rtc.addr();
    let ctx = Arc::new(SessionContext {
        rtc: Arc::new(rtc),
        page_linger: cfg.page_linger_s,
        limits: Limits::default(),
        counters: Arc::new(Counters::default()),
        quic: quic.clone(),
        reconnect_window: cfg.reconnect_window_s,
    });
    let counters = ctx.counters.clone();
    let app = App::new(cfg, quic, ctx);
    let signal = tsuitate_cli::shutdown_signal().context("signal handlers")?;
    tracing::info!(%addr, %rtc_addr, "web viewer listening");
    eprintln!("tsuitate-web: https://{addr}/ で待ち受けています / listening on https://{addr}/");
    if let Some(path) = ready_file {
        let json = serde_json::json!({ "listen": addr.to_string(), "rtc": rtc_addr.to_string() });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json.to_string()).context("--ready-file")?;
        std::fs::rename(&tmp, path).context("--ready-file")?;
    }
    http::serve(app.clone(), listener, tls, signal).await;
    app.logout_all().await;
    let c = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        frames_sent = c(&counters.frames_sent),
        keyframe_requests = c(&counters.keyframe_requests),
        page_errors = c(&counters.page_errors),
        reconnects = c(&counters.reconnects),
        "web viewer stopped"
    );
    Ok(ExitCode::SUCCESS)
}
