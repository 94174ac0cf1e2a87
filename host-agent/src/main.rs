//! `tsuitate-agent --config FILE`: the host agent (Internet zone).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use tsuitate_agent::config::AgentConfig;
use tsuitate_cli::LogFormat;

/// tsuitate host agent: runs Chromium sessions under Xvfb for the gateway.
/// tsuitate ホストエージェント: ゲートウェイのために Xvfb 上の Chromium セッションを動かします。
#[derive(Debug, Parser)]
#[command(name = "tsuitate-agent", version)]
struct Cli {
    /// Configuration file (TOML) / 設定ファイル (TOML)
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Only check the configuration and exit: 0 when valid, 2 with every problem listed
    /// / 設定を検査して終了
    #[arg(long, alias = "check")]
    check_config: bool,
    /// Log format on stderr (filter: TSUITATE_LOG) / ログの形式（絞り込みは TSUITATE_LOG）
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Same as `--log-format json` (kept for existing units).
    #[arg(long, hide = true)]
    log_json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = if cli.log_json {
        LogFormat::Json
    } else {
        cli.log_format
    };
    tsuitate_cli::init_logging(format, "info");
    let config = match AgentConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
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
        let signal = tsuitate_cli::shutdown_signal().context("signal handlers")?;
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down / 停止します");
            let _ = stop_tx.send(true);
        });
        tracing::info!(agent = %config.agent_id, gateways = config.gateways.len(), max_sessions = config.max_sessions, "tsuitate-agent starting");
        tsuitate_agent::client::run(config, stop_rx).await.context("agent")
    })
}
