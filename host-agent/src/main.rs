//! `tsuitate-agent --config FILE`: the host agent (Internet zone).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;
use tsuitate_agent::config::AgentConfig;

/// tsuitate host agent: runs Chromium sessions under Xvfb for the gateway.
/// tsuitate ホストエージェント: ゲートウェイのために Xvfb 上の Chromium セッションを動かします。
#[derive(Debug, Parser)]
#[command(name = "tsuitate-agent", version)]
struct Cli {
    /// Configuration file (TOML) / 設定ファイル (TOML)
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Only check the configuration and exit / 設定を検査して終了
    #[arg(long)]
    check: bool,
    /// Log as JSON lines / ログを JSON 行で出力
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    let config = match AgentConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("設定は正常です / configuration OK");
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("エラー / error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: AgentConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("shutting down / 停止します");
            let _ = stop_tx.send(true);
        });
        tracing::info!(agent = %config.agent_id, gateways = config.gateways.len(), max_sessions = config.max_sessions, "tsuitate-agent starting");
        tsuitate_agent::client::run(config, stop_rx).await.context("agent")
    })
}
