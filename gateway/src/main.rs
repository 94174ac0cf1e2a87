//! `tsuitate-gateway`: run the gateway and administer it (CA, users, audit log).
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use tsuitate_cli::LogFormat;
use tsuitate_gateway::{admin, audit, certs, config::Config, selfcheck, users, Gateway};

#[derive(Parser)]
#[command(
    name = "tsuitate-gateway",
    version,
    about = "tsuitate gateway (衝立 ゲートウェイ)"
)]
struct Cli {
    /// Log format on stderr (filter: TSUITATE_LOG). / ログの形式（絞り込みは TSUITATE_LOG）。
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway. / ゲートウェイを起動します。
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Only check the configuration (and its files) and exit: 0 when valid, 2 with every
        /// problem listed. / 設定を検査して終了します。
        #[arg(long)]
        check_config: bool,
        /// Once every listener is bound, write the addresses it got as JSON
        /// (`{"viewer_listen", "agent_listen", "admin_listen"}`) to this file; useful with
        /// port 0. / 待ち受けアドレスを JSON で書き出すファイル。
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Check a config file and exit; as root, also warn about files the service user could not
    /// open. / 設定ファイルを検査します（root ならサービスユーザーが読めないファイルも警告）。
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
        /// The account the gateway runs as (default: tsuitate, when it exists).
        /// / ゲートウェイを実行するユーザー（既定 tsuitate）。
        #[arg(long)]
        service_user: Option<String>,
    },
    /// Private CA. / 専用の認証局。
    #[command(subcommand)]
    Ca(CaCmd),
    /// Viewer users. / 利用者の管理。
    #[command(subcommand)]
    User(UserCmd),
    /// Audit log. / 監査ログ。
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Self-check (自己点検): one line per security requirement with pass/warn/fail and the
    /// evidence; exit 1 when anything fails. / 自己点検（不合格があれば終了コード 1）。
    SelfCheck {
        #[arg(long)]
        config: PathBuf,
        /// JSON for automation. / JSON で出力。
        #[arg(long)]
        json: bool,
        /// Warn about passwords set longer ago than this. / この日数より古いパスワードを警告。
        #[arg(long, default_value_t = 365)]
        password_max_age_days: u64,
        /// An admin token file (else TSUITATE_ADMIN_TOKEN): the running gateway is then asked
        /// about its agents' browser and policy. / 管理トークン（エージェントの確認に使用）。
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Admin API: sessions, ending one, emergency stop and resume (docs/operations.md).
    /// / 管理 API: セッション一覧・終了・緊急停止・再開。
    Admin(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The gateway's admin listener (repeat for several gateways; emergency-stop and resume
    /// go to each). / 管理用ポート（複数可）。
    #[arg(long = "addr", global = true, default_value = "127.0.0.1:9470")]
    addrs: Vec<String>,
    /// File holding this admin's token (else the TSUITATE_ADMIN_TOKEN variable).
    /// / 管理トークンのファイル（または環境変数 TSUITATE_ADMIN_TOKEN）。
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print the gateway's JSON answer. / JSON で表示します。
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Create a token for admin NAME in the tokens file (printed once; only its hash is kept).
    /// / 管理者のトークンを作成します（表示は一度だけ）。
    TokenAdd {
        /// The gateway's `admin_tokens_file`.
        #[arg(long)]
        tokens: PathBuf,
        /// The admin's name (1-64 of A-Z a-z 0-9 . _ -), written to the audit log with each call.
        #[arg(long)]
        name: String,
    },
    /// List the sessions. / セッションの一覧。
    Sessions,
    /// Emergency stop, agents and session count. / 緊急停止の状態・エージェント。
    Status,
    /// End one session (the user sees "an administrator ended the session").
    /// / セッションを 1 つ終了します。
    End {
        /// The session id from `sessions`.
        id: String,
    },
    /// End every session now and refuse logins until `resume` (or, with --agent, every
    /// session on that agent and no new ones there). / 緊急停止。
    EmergencyStop {
        #[arg(long)]
        agent: Option<String>,
    },
    /// Lift an emergency stop (of all, or of one agent). / 緊急停止の解除。
    Resume {
        #[arg(long)]
        agent: Option<String>,
    },
    /// List the connected agents (capacity, sessions, draining, certificate expiry).
    /// / エージェントの一覧。
    Agents,
    /// No new sessions on this agent; the running ones go on (before maintenance).
    /// / エージェントを縮退（新規セッションを割り当てない）。
    Drain {
        /// The agent id.
        id: String,
    },
    /// Place new sessions on this agent again. / 縮退の解除。
    Undrain {
        /// The agent id.
        id: String,
    },
}

#[derive(Subcommand)]
enum CaCmd {
    /// Create ca.pem, ca-key.pem, gateway.pem, gateway-key.pem in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS name or IP address for the gateway certificate (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Create agent-ID.pem and agent-ID-key.pem (CN = ID) signed by the CA in DIR.
    IssueAgent(IssueArgs),
    /// Create front-NAME.pem and front-NAME-key.pem (CN = front:NAME) for a web viewer that the
    /// gateway trusts to tell each browser's address (list NAME in `trusted_fronts`).
    IssueFront(IssueArgs),
    /// Revoke a client certificate (agent or front): its serial goes into DIR/revoked.txt
    /// (`[tls] revoked`), and the gateway refuses it from its next connection; stop a
    /// connected agent at once with `admin emergency-stop --agent ID`.
    /// / クライアント証明書を失効させます。
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate file (PEM), e.g. DIR/agent-ID.pem.
        #[arg(long)]
        cert: PathBuf,
    },
}

/// A client certificate to issue from the CA in DIR.
#[derive(clap::Args)]
struct IssueArgs {
    #[arg(long)]
    dir: PathBuf,
    /// The agent id or front name (A-Z a-z 0-9 . _ -, 1-64 chars).
    #[arg(long)]
    name: String,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, clap::Args)]
struct UserArgs {
    /// User name.
    name: String,
    /// The users file (TOML, or JSON if it ends in .json).
    #[arg(long)]
    users: PathBuf,
    /// Append the admin action to this audit log.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// The audit log's HMAC key (`audit_hmac_key_file`), needed when the log is keyed.
    #[arg(long, requires = "audit")]
    audit_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user; the password is read from the terminal (or stdin when not a terminal).
    Add(UserArgs),
    /// Set a new password.
    Passwd(UserArgs),
    /// Remove a user.
    Remove(UserArgs),
    /// Disable a user (kept, cannot log in).
    Disable(UserArgs),
    /// Enable a disabled user.
    Enable(UserArgs),
    /// List users.
    List {
        #[arg(long)]
        users: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the hash chain of an audit log, and with --anchors that it still holds every
    /// anchored line (nothing cut from its end, nothing rewritten before an anchor).
    /// / 監査ログのハッシュチェーン（と、アンカーとの一致）を検証します。
    Verify {
        file: PathBuf,
        /// The anchor file (`audit_anchor`), or syslog/journal text with `seq=N head=H`
        /// (e.g. `journalctl -t tsuitate-gateway --grep 'audit anchor'`); `-` reads stdin.
        #[arg(long)]
        anchors: Option<PathBuf>,
        /// The HMAC key (`audit_hmac_key_file`): every line's MAC is checked too, and the log
        /// must end with a keyed line.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tsuitate_cli::init_logging(cli.log_format, "info");
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("エラー / error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run {
            config,
            check_config: true,
            ..
        } => check_config(&config, None),
        Cmd::CheckConfig {
            config,
            service_user,
        } => check_config(&config, service_user.as_deref()),
        Cmd::Run {
            config, ready_file, ..
        } => run(config, ready_file),
        Cmd::Admin(a) => admin_cmd(a),
        Cmd::SelfCheck {
            config,
            json,
            password_max_age_days,
            token_file,
        } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(2));
                }
            };
            // A named token file must be readable; the variable is optional.
            let admin_token = match &token_file {
                Some(_) => match read_token(token_file.as_deref()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        eprintln!("{e:#}");
                        return Ok(ExitCode::from(2));
                    }
                },
                None => std::env::var("TSUITATE_ADMIN_TOKEN")
                    .ok()
                    .map(|t| t.trim().to_owned()),
            };
            let opts = selfcheck::Options {
                password_max_age: std::time::Duration::from_secs(
                    password_max_age_days.saturating_mul(86_400),
                ),
                admin_token,
                ..selfcheck::Options::default()
            };
            let items = selfcheck::run(&cfg, &opts);
            if json {
                println!("{}", selfcheck::to_json(&items, opts.now));
            } else {
                print!("{}", selfcheck::text(&items, opts.now));
            }
            let (_, _, failed) = selfcheck::summary(&items);
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Ca(c) => ca(c),
        Cmd::User(c) => user(c),
        Cmd::Audit(AuditCmd::Verify { file, anchors, key }) => {
            let key = key
                .as_deref()
                .map(audit::AuditKey::load)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let anchors = match &anchors {
                None => Vec::new(),
                Some(a) => {
                    let text = if a.as_os_str() == "-" {
                        let mut t = String::new();
                        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
                        t
                    } else {
                        std::fs::read_to_string(a).with_context(|| format!("{}", a.display()))?
                    };
                    let found = audit::read_anchors(&text, &file);
                    if found.is_empty() {
                        bail!(
                            "{}: no anchors for {} / アンカーがありません",
                            a.display(),
                            file.display()
                        );
                    }
                    found
                }
            };
            match audit::verify_with_anchors_keyed(&file, &anchors, key.as_ref()) {
                Ok(n) if key.is_some() && anchors.is_empty() => {
                    println!("監査ログは正常で、全行の MAC が一致します ({n} 行) / audit log OK ({n} lines), every MAC matches");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(n) if anchors.is_empty() => {
                    println!("監査ログは正常です ({n} 行) / audit log OK ({n} lines)");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(n) => {
                    println!(
                        "監査ログは正常で、{} 個のアンカーと一致します ({n} 行) / audit log OK ({n} lines), matching {} anchors",
                        anchors.len(),
                        anchors.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
    }
}

/// Write `value` to `path` in one step (a reader never sees half a file).
fn write_atomically(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{value}\n"))
        .with_context(|| format!("{}", PathBuf::from(&tmp).display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

fn run(config: PathBuf, ready_file: Option<PathBuf>) -> Result<ExitCode> {
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let gw = Gateway::start(cfg).await?;
        println!(
            "tsuitate-gateway: viewers {} / agents {} / admin http://{}",
            gw.viewer_addr, gw.agent_addr, gw.admin_addr
        );
        // Signal handlers first: whoever waits for the ready file may send SIGTERM at once.
        let signal = match tsuitate_cli::shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                gw.shutdown().await;
                return Err(anyhow::Error::new(e).context("signal handlers"));
            }
        };
        if let Some(path) = &ready_file {
            let ready = json!({
                "viewer_listen": gw.viewer_addr.to_string(),
                "agent_listen": gw.agent_addr.to_string(),
                "admin_listen": gw.admin_addr.to_string(),
            });
            if let Err(e) = write_atomically(path, &ready) {
                gw.shutdown().await;
                return Err(e.context("--ready-file"));
            }
        }
        signal.await;
        gw.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn ca(c: CaCmd) -> Result<ExitCode> {
    let written = match c {
        CaCmd::Init { dir, names, force } => certs::ca_init(&dir, &names, force)?,
        CaCmd::IssueAgent(a) => certs::issue_agent(&a.dir, &a.name, a.force)?,
        CaCmd::IssueFront(a) => certs::issue_front(&a.dir, &a.name, a.force)?,
        CaCmd::Revoke { dir, cert } => {
            let (serial, cn) = certs::revoke(&dir, &cert)?;
            println!(
                "失効しました / revoked: {cn} (serial {serial}) in {}",
                dir.join(certs::REVOKED).display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    for p in written {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("パスワード / password: ")?;
        let b = rpassword::prompt_password("もう一度 / again: ")?;
        if a != b {
            bail!("パスワードが一致しません / the passwords do not match");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn user(c: UserCmd) -> Result<ExitCode> {
    if let UserCmd::List { users } = &c {
        let f = users::UsersFile::load(users)?;
        for (name, u) in &f.users {
            println!("{name}{}", if u.disabled { " (disabled)" } else { "" });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (action, args) = match c {
        UserCmd::Add(a) => ("user_add", a),
        UserCmd::Passwd(a) => ("user_passwd", a),
        UserCmd::Remove(a) => ("user_remove", a),
        UserCmd::Disable(a) => ("user_disable", a),
        UserCmd::Enable(a) => ("user_enable", a),
        UserCmd::List { .. } => return Ok(ExitCode::SUCCESS),
    };
    let mut f = users::UsersFile::load(&args.users)?;
    let params = argon2::Params::DEFAULT;
    match action {
        "user_add" => f.add(&args.name, &read_password()?, params)?,
        "user_passwd" => {
            let pw = read_password()?;
            f.remove(&args.name)?;
            f.add(&args.name, &pw, params)?;
        }
        "user_remove" => f.remove(&args.name)?,
        "user_disable" => f.set_disabled(&args.name, true)?,
        _ => f.set_disabled(&args.name, false)?,
    }
    f.save(&args.users)?;
    if let Some(log) = &args.audit {
        let key = args
            .audit_key
            .as_deref()
            .map(audit::AuditKey::load)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        audit::append(
            log,
            json!({"event": "admin_action", "action": action, "user": args.name}),
            key.as_ref(),
        )?;
    }
    println!("{action}: {}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// `check-config`: every problem of the configuration (exit 2), then, for a valid one, the
/// files the service user could not open (warnings, exit 0).
fn check_config(config: &std::path::Path, service_user: Option<&str>) -> Result<ExitCode> {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    println!("設定は正しいです / configuration OK");
    let name = service_user.unwrap_or("tsuitate");
    match tsuitate_cli::unix_user::lookup(name) {
        Some(account) => {
            for p in cfg.access_problems(&account) {
                eprintln!("警告: サービスユーザーが開けないファイルがあります / warning: {p}");
            }
        }
        None if service_user.is_some() => {
            eprintln!("警告 / warning: no user {name:?} in /etc/passwd: file access not checked");
        }
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn admin_token(args: &AdminArgs) -> Result<String> {
    read_token(args.token_file.as_deref())
}

/// The admin token from `file`, else from TSUITATE_ADMIN_TOKEN.
fn read_token(file: Option<&std::path::Path>) -> Result<String> {
    let token = match file {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?,
        None => std::env::var("TSUITATE_ADMIN_TOKEN").map_err(|_| {
            anyhow::anyhow!(
                "no admin token: --token-file FILE or TSUITATE_ADMIN_TOKEN / 管理トークンを指定してください"
            )
        })?,
    };
    Ok(token.trim().to_owned())
}

fn admin_cmd(args: AdminArgs) -> Result<ExitCode> {
    if let AdminCmd::TokenAdd { tokens, name } = &args.cmd {
        let token = admin::add_token(tokens, name)?;
        eprintln!(
            "管理者 {name} のトークン（この一度だけ表示します。安全に保管してください） / token for admin {name} (shown once; keep it safe):"
        );
        println!("{token}");
        return Ok(ExitCode::SUCCESS);
    }
    let token = admin_token(&args)?;
    let (method, path) = match &args.cmd {
        AdminCmd::Sessions => ("GET", "/admin/v1/sessions".to_owned()),
        AdminCmd::Status => ("GET", "/admin/v1/status".to_owned()),
        AdminCmd::End { id } => {
            if !id.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
                bail!("{id:?}: a session id is a number (see `admin sessions`) / セッション ID は数字です");
            }
            ("POST", format!("/admin/v1/sessions/{id}/end"))
        }
        AdminCmd::EmergencyStop { agent } => {
            ("POST", with_agent("/admin/v1/emergency-stop", agent)?)
        }
        AdminCmd::Resume { agent } => ("POST", with_agent("/admin/v1/resume", agent)?),
        AdminCmd::Agents => ("GET", "/admin/v1/agents".to_owned()),
        AdminCmd::Drain { id } | AdminCmd::Undrain { id } => {
            if !certs::agent_id_valid(id) {
                bail!("{id:?}: not an agent id / エージェント ID ではありません");
            }
            let what = if matches!(args.cmd, AdminCmd::Drain { .. }) {
                "drain"
            } else {
                "undrain"
            };
            ("POST", format!("/admin/v1/agents/{id}/{what}"))
        }
        AdminCmd::TokenAdd { .. } => return Ok(ExitCode::SUCCESS),
    };
    let mut code = ExitCode::SUCCESS;
    for addr in &args.addrs {
        let (status, body) = match admin::call(addr, method, &path, &token) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{e}");
                code = ExitCode::from(3);
                continue;
            }
        };
        if status != 200 {
            eprintln!(
                "{addr}: {} / {} (HTTP {status})",
                body["error"].as_str().unwrap_or("error"),
                body["error_ja"].as_str().unwrap_or("エラー")
            );
            code = ExitCode::from(1);
            continue;
        }
        if args.json {
            println!("{body}");
            continue;
        }
        print_admin(addr, &args.cmd, &body);
    }
    Ok(code)
}

fn with_agent(path: &str, agent: &Option<String>) -> Result<String> {
    match agent {
        None => Ok(path.to_owned()),
        Some(a) if certs::agent_id_valid(a) => Ok(format!("{path}?agent={a}")),
        Some(a) => bail!("{a:?}: not an agent id / エージェント ID ではありません"),
    }
}

fn print_admin(addr: &str, cmd: &AdminCmd, body: &serde_json::Value) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    match cmd {
        AdminCmd::Sessions => {
            let list = body["sessions"].as_array().cloned().unwrap_or_default();
            println!(
                "{addr}: セッション {} 件 / {} sessions",
                list.len(),
                list.len()
            );
            if !list.is_empty() {
                println!(
                    "{:<20} {:<16} {:<12} {:<22} {:<20} {:>9} {:>7}",
                    "id", "user", "agent", "viewer", "started", "duration", "idle"
                );
            }
            for x in list {
                println!(
                    "{:<20} {:<16} {:<12} {:<22} {:<20} {:>8}s {:>6}s",
                    s(&x["id"]),
                    s(&x["user"]),
                    s(&x["agent"]),
                    x["viewer"].as_str().unwrap_or("(lingering)"),
                    s(&x["started"]),
                    x["duration_s"],
                    x["idle_s"]
                );
            }
        }
        AdminCmd::Status => {
            match body["emergency_stop"].as_object() {
                Some(e) => println!(
                    "{addr}: 緊急停止中（{}、{}） / EMERGENCY STOP by {} since {}",
                    s(&e["by"]),
                    s(&e["since"]),
                    s(&e["by"]),
                    s(&e["since"])
                ),
                None => println!("{addr}: 通常運用 / normal operation"),
            }
            println!(
                "  セッション / sessions: {}",
                body["sessions"].as_u64().unwrap_or(0)
            );
            for a in body["agents"].as_array().cloned().unwrap_or_default() {
                println!(
                    "  agent {}: {}/{} sessions{}",
                    s(&a["id"]),
                    a["sessions"],
                    a["capacity"],
                    if a["stopped"] == true {
                        " — 停止中 / stopped"
                    } else {
                        ""
                    }
                );
            }
        }
        AdminCmd::End { id } => {
            println!("{addr}: セッション {id} を終了しました / ended session {id}")
        }
        AdminCmd::EmergencyStop { .. } => println!(
            "{addr}: 緊急停止（{}）: {} セッションを終了 / emergency stop ({}): {} sessions ended",
            s(&body["stopped"]),
            body["ended"],
            s(&body["stopped"]),
            body["ended"]
        ),
        AdminCmd::Resume { .. } => println!(
            "{addr}: 再開しました（{}） / resumed ({})",
            s(&body["resumed"]),
            s(&body["resumed"])
        ),
        AdminCmd::Agents => {
            let list = body["agents"].as_array().cloned().unwrap_or_default();
            println!(
                "{addr}: エージェント {} 台 / {} agents",
                list.len(),
                list.len()
            );
            for a in list {
                let state = match (a["stopped"] == true, a["draining"] == true) {
                    (true, _) => " — 停止中 / stopped",
                    (_, true) => " — 縮退中 / draining",
                    _ => "",
                };
                let browser = match s(&a["browser"]) {
                    b if b.is_empty() || b == "-" => "browser unknown / ブラウザ不明".to_owned(),
                    b => b,
                };
                let policy = match s(&a["policy_sha256"]) {
                    p if !p.is_empty() && p != "-" => {
                        format!("policy {}", p.chars().take(12).collect::<String>())
                    }
                    _ => "no policy reported / ポリシー未報告".to_owned(),
                };
                println!(
                    "  {}: {}/{} sessions, certificate until {}, {browser}, {policy}{state}",
                    s(&a["id"]),
                    a["sessions"],
                    a["capacity"],
                    s(&a["certificate_expires"])
                );
            }
        }
        AdminCmd::Drain { id } => println!(
            "{addr}: {id} を縮退しました（新規セッションなし） / draining {id} (no new sessions)"
        ),
        AdminCmd::Undrain { id } => {
            println!("{addr}: {id} の縮退を解除しました / {id} takes new sessions again")
        }
        AdminCmd::TokenAdd { .. } => {}
    }
}
