#!/usr/bin/env bash
# Runs the whole product on this machine: the README's first command.
#   - installs missing Debian packages (nasm, xvfb, chromium, fonts-noto-cjk, xauth)
#   - builds the release binaries
#   - creates a throwaway CA, gateway and agent certificates, and a demo user in .demo/
#   - starts the gateway, an agent with a real Chromium on the bundled Japanese welcome page,
#     the web viewer (prints its URL: open it in Edge or Chrome), and a viewer: a window when a
#     display exists, otherwise headless (prints fps/latency and saves a snapshot PNG; then the
#     web viewer is opened in headless Chromium and a screenshot of the page is saved)
#   - stops everything cleanly on Ctrl-C
# 製品一式をこのマシンで起動します。Ctrl-C ですべて停止します。
#
# Environment: TSUITATE_DEMO_DIR (default .demo), TSUITATE_DEMO_HEADLESS=1 forces headless,
# TSUITATE_DEMO_SECONDS (headless run length, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
demo="${TSUITATE_DEMO_DIR:-$root/.demo}"
seconds="${TSUITATE_DEMO_SECONDS:-20}"
password="demo-password"

metrics() {
  # Plain bash HTTP GET of the gateway's admin listener (no curl needed).
  exec 3<>/dev/tcp/127.0.0.1/9470 || return 1
  printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  cat <&3
  exec 3>&-
}
say() { printf '\033[1m[tsuitate]\033[0m %s\n' "$*"; }

scripts/install-deps.sh
scripts/setup-browser-user.sh
say "building (release) / ビルド中…"
cargo build --release --locked --bins -q
bin="$root/target/release"

rm -rf "$demo"
mkdir -p "$demo"
chmod 755 "$demo"
say "creating a throwaway CA and demo user / 使い捨ての認証局とデモ利用者を作成"
"$bin/tsuitate-gateway" ca init --dir "$demo/pki" >/dev/null
"$bin/tsuitate-gateway" ca issue-agent --dir "$demo/pki" --name demo-agent >/dev/null
printf '%s\n' "$password" | "$bin/tsuitate-gateway" user add demo --users "$demo/users.toml" >/dev/null
"$bin/tsuitate-gateway" admin token-add --tokens "$demo/admin-tokens.toml" --name demo-admin \
  >"$demo/admin.token" 2>/dev/null
chmod 600 "$demo/admin.token"

cat >"$demo/gateway.toml" <<TOML
agent_listen = "127.0.0.1:4701"
viewer_listen = "127.0.0.1:4700"
admin_listen = "127.0.0.1:9470"
users_file = "users.toml"
audit_log = "audit.jsonl"
admin_tokens_file = "admin-tokens.toml"

[tls]
ca = "pki/ca.pem"
cert = "pki/gateway.pem"
key = "pki/gateway-key.pem"
TOML

# The welcome page is served over loopback HTTP: the browser's managed policy blocks file://
# (the LGWAN user must never see the agent host's files).
welcome_port=4702

browser_user=""
if [ "$(id -u)" -eq 0 ]; then
  browser_user='browser_user_pool = "tsuitate-browser"'
fi
cat >"$demo/agent.toml" <<TOML
$browser_user
agent_id = "demo-agent"
max_sessions = 2
start_url = "http://127.0.0.1:$welcome_port/index.html"
ca = "pki/ca.pem"
cert = "pki/agent-demo-agent.pem"
key = "pki/agent-demo-agent-key.pem"

[[gateways]]
addr = "127.0.0.1:4701"
server_name = "localhost"
TOML

# The web viewer. The demo reuses the gateway's certificate (it names localhost and 127.0.0.1);
# in production it gets its own, for the name staff type (docs/viewer.md).
web_port=4703
cat >"$demo/web.toml" <<TOML
listen = "127.0.0.1:$web_port"
cert = "pki/gateway.pem"
key = "pki/gateway-key.pem"
ca = "pki/ca.pem"
gateway = "127.0.0.1:4700"
gateway_name = "localhost"
rtc_ip = "127.0.0.1"
TOML

pids=()
cleanup() {
  say "stopping / 停止しています…"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[$i]}" 2>/dev/null || true
  done
  say "stopped / 停止しました (logs: $demo)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 -m http.server --bind 127.0.0.1 --directory deploy/welcome "$welcome_port" \
  >"$demo/welcome.log" 2>&1 &
pids+=($!)
"$bin/tsuitate-gateway" run --config "$demo/gateway.toml" 2>"$demo/gateway.log" &
pids+=($!)
(cd "$demo" && exec "$bin/tsuitate-agent" --config "$demo/agent.toml") 2>"$demo/agent.log" &
pids+=($!)
"$bin/tsuitate-web" --config "$demo/web.toml" 2>"$demo/web.log" &
pids+=($!)
say "web viewer / Web ビューア: https://127.0.0.1:$web_port/  (user demo / password $password;"
say "  the demo CA is not trusted by your browser: accept the warning, or trust $demo/pki/ca.pem)"

say "admin API / 管理 API: $bin/tsuitate-gateway admin --token-file $demo/admin.token sessions|status|emergency-stop|resume"
say "waiting for the agent to register / エージェントの接続を待っています…"
for _ in $(seq 1 100); do
  if metrics 2>/dev/null | grep -Eq '^tsuitate_agents_connected [1-9]'; then
    break
  fi
  sleep 0.2
done

export TSUITATE_PASSWORD="$password"
viewer_args=(--gateway 127.0.0.1:4700 --server-name localhost --ca "$demo/pki/ca.pem" --user demo)
if [ -n "${DISPLAY:-}" ] && [ "${TSUITATE_DEMO_HEADLESS:-0}" != 1 ]; then
  say "opening the viewer window (close it or press Ctrl-C to stop) / ビューアを表示します"
  "$bin/tsuitate-viewer" "${viewer_args[@]}" &
  pids+=($!)
  wait "${pids[-1]}" || true
else
  say "no display: headless viewer for ${seconds}s / 画面がないためヘッドレスで ${seconds} 秒実行"
  cat >"$demo/demo.script" <<SCRIPT
expect-change 30000
wait 2000
snapshot welcome.png
click 280 585
wait 500
type tsuitate 情報セキュリティ
wait 500
click 588 583
wait $((seconds * 1000))
snapshot after.png
SCRIPT
  "$bin/tsuitate-viewer" --headless "${viewer_args[@]}" --script "$demo/demo.script" \
    --report "$demo/report.json" --snapshot-dir "$demo" || true
  say "report / 結果: $demo/report.json"
  cat "$demo/report.json" 2>/dev/null || true
  echo
  say "snapshots / スナップショット: $demo/welcome.png $demo/after.png"
  say "web viewer in headless Chromium / Web ビューアをヘッドレス Chromium で表示…"
  if "$bin/web-shot" "https://127.0.0.1:$web_port/" demo "$demo/web-viewer.png" 3; then
    say "web viewer screenshot / Web ビューアの画面: $demo/web-viewer.png"
  else
    say "web viewer screenshot failed / Web ビューアの画面を取得できませんでした (log: $demo/web.log)"
  fi
fi
