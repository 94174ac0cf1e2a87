#!/usr/bin/env bash
# End-to-end benchmark of the real stack on a scripted browsing workload (docs/benchmarks.md).
# 実際の構成（ゲートウェイ・エージェント＋Chromium・ヘッドレスビューア）で、閲覧操作の台本を
# 再生して性能を測ります（docs/benchmarks.md）。
#
#   scripts/bench-e2e.sh
#
# What it does / 処理の流れ:
#   1. installs missing Debian packages (scripts/install-deps.sh; ffmpeg only for step 6),
#      builds the release binaries, creates a throwaway CA, user and configs in a temp dir;
#   2. serves a long, scrollable Japanese page on 127.0.0.1 (python3 -m http.server);
#   3. starts the gateway and an agent (Xvfb + Chromium on that page) and opens the session
#      with a headless viewer (warm-up run, the session is kept);
#   4. run 1: replays the workload (reload, idle, wheel scrolling, typing, clicking) and
#      samples /proc and the gateway's metrics;
#   5. prints capture→decoded latency p50/p95/p99 (viewer --report), agent CPU per session
#      (utime+stime of the agent process, and with its Xvfb/Chromium descendants, per second of
#      workload), bytes per second, and frames relayed during the idle window
#      (tsuitate_frames_relayed_total before/after);
#   6. run 2: the same workload again while ffmpeg captures the session's Xvfb display at a
#      fixed 30 fps and encodes it with x264 (ultrafast, zerolatency) into a byte counter; prints
#      encode CPU (agent process vs ffmpeg process) and bytes side by side as ratios.
#
# Environment / 環境変数:
#   TSUITATE_BENCH_SIZE     session size WxH (default 1280x720)
#   TSUITATE_BENCH_IDLE_MS  idle period of the workload in ms (default 12000)
#   TSUITATE_BENCH_DIR      working directory (default: a new /tmp/tsuitate-bench.XXXXXX, kept)
#   TSUITATE_BENCH_NO_X264=1  skip step 6 (no ffmpeg needed)
# Run as root (Chromium then runs as the unprivileged user from scripts/setup-browser-user.sh)
# or as a normal user. Everything it starts is stopped on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
size="${TSUITATE_BENCH_SIZE:-1280x720}"
width="${size%x*}"
height="${size#*x}"
idle_ms="${TSUITATE_BENCH_IDLE_MS:-12000}"
no_x264="${TSUITATE_BENCH_NO_X264:-0}"
password="bench-password-ベンチ"

say() { printf '\033[1m[bench-e2e]\033[0m %s\n' "$*" >&2; }
die() {
  printf '[bench-e2e] error: %s\n' "$*" >&2
  exit 1
}

case "$width$height" in
  *[!0-9]*) die "TSUITATE_BENCH_SIZE must look like 1280x720 / 1280x720 の形式で指定してください" ;;
esac
case "$idle_ms" in
  '' | *[!0-9]*) die "TSUITATE_BENCH_IDLE_MS must be a number / 数値で指定してください" ;;
esac
[ "$idle_ms" -ge 6000 ] || die "TSUITATE_BENCH_IDLE_MS must be at least 6000"
command -v python3 >/dev/null || die "python3 is needed / python3 が必要です"

dir="${TSUITATE_BENCH_DIR:-$(mktemp -d /tmp/tsuitate-bench.XXXXXX)}"
mkdir -p "$dir"
chmod 755 "$dir"
say "working directory / 作業ディレクトリ: $dir"

install_ffmpeg() {
  command -v ffmpeg >/dev/null 2>&1 && return 0
  say "installing ffmpeg (benchmark only) / ffmpeg をインストールします（ベンチマーク専用）"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install ffmpeg"
    sudo="sudo"
  fi
  {
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ffmpeg
  } >"$dir/apt.log" 2>&1 || die "installing ffmpeg failed (see $dir/apt.log)"
}

scripts/install-deps.sh
scripts/setup-browser-user.sh
[ "$no_x264" = 1 ] || install_ffmpeg
say "building release binaries / リリースビルド中…"
cargo build --release --locked -q --bins -p tsuitate-gateway -p tsuitate-agent -p tsuitate-viewer
bin="$root/target/release"


# ---------------------------------------------------------------------------------------------
# Helper for /proc, metrics and the summary (python3 is needed for the page server anyway).
cat >"$dir/helper.py" <<'PY'
import json, os, socket, sys, time, urllib.request

TCK = os.sysconf("SC_CLK_TCK")

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    # fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return int(rest[1]), [int(x) for x in rest[11:15]]

def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid, _ = stat(d)
            except (OSError, ValueError, IndexError):
                continue
            m.setdefault(ppid, []).append(int(d))
    return m

def tree(pid):
    m, out, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(m.get(p, []))
    return out

def proc_cpu(pid):
    try:
        _, t = stat(pid)
        return (t[0] + t[1]) / TCK
    except (OSError, ValueError):
        return None

def tree_cpu(pid):
    # utime+stime of every live process in the tree, plus the time of children they reaped.
    total = 0
    for p in tree(pid):
        try:
            _, t = stat(p)
            total += sum(t)
        except (OSError, ValueError):
            pass
    return total / TCK

def metric(admin, name):
    try:
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.split()[-1])
    except OSError:
        return None
    return None

def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []

def chromium(agent):
    for p in tree(int(agent)):
        if "chrom" in comm(p) and not any(a.startswith(b"--type=") for a in cmdline(p)):
            return p
    return None

def environ(pid, name):
    with open(f"/proc/{pid}/environ", "rb") as f:
        for kv in f.read().split(b"\0"):
            k, _, v = kv.partition(b"=")
            if k.decode() == name:
                return v.decode()
    return ""

def progress_frames(path):
    try:
        with open(path) as f:
            frames = [l for l in f.read().splitlines() if l.startswith("frame=")]
        return int(frames[-1].split("=")[1]) if frames else 0
    except (OSError, ValueError):
        return None

def sample(label):
    e = os.environ
    s = {"label": label, "t": time.time()}
    s["agent_cpu"] = proc_cpu(e["AGENT_PID"])
    s["tree_cpu"] = tree_cpu(int(e["AGENT_PID"]))
    s["gateway_cpu"] = proc_cpu(e["GATEWAY_PID"])
    s["frames"] = metric(e["ADMIN"], "tsuitate_frames_relayed_total")
    s["bytes"] = metric(e["ADMIN"], "tsuitate_bytes_relayed_total")
    if e.get("FFMPEG_PID"):
        s["ffmpeg_cpu"] = proc_cpu(e["FFMPEG_PID"])
        try:
            s["x264_bytes"] = os.path.getsize(e["X264_OUT"])
        except OSError:
            s["x264_bytes"] = None
        s["x264_frames"] = progress_frames(e["X264_PROGRESS"])
    with open(e["SAMPLES"], "a") as f:
        f.write(json.dumps(s) + "\n")

def page_state(log, from_line):
    # The page reports its field value and click count as GET /report?... (404 in the log).
    from urllib.parse import urlsplit, parse_qs
    state = {"typed": None, "clicks": 0}
    with open(log, errors="replace") as f:
        for i, line in enumerate(f):
            if i < from_line or '"GET /report?' not in line:
                continue
            q = parse_qs(urlsplit(line.split('"')[1].split()[1]).query)
            if "typed" in q:
                state["typed"] = q["typed"][0]
            if "clicks" in q:
                state["clicks"] = int(q["clicks"][0])
    print(json.dumps(state, ensure_ascii=False))

def free_port(kind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-port":
        free_port(args[0])
    elif cmd == "sample":
        sample(args[0])
    elif cmd == "chromium":
        print(chromium(args[0]) or "")
    elif cmd == "environ":
        print(environ(args[0], args[1]))
    elif cmd == "metric":
        v = metric(args[0], args[1])
        print("" if v is None else int(v))
    elif cmd == "page-state":
        page_state(args[0], int(args[1]))
    elif cmd == "tree":
        print(" ".join(map(str, tree(int(args[0])))))
PY
helper() { python3 "$dir/helper.py" "$@"; }

# ---------------------------------------------------------------------------------------------
# The page: a fixed bar with a text field and a button, then a long Japanese text to scroll.
page="$dir/page"
mkdir -p "$page"
{
  cat <<'HTML'
<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>衝立 ベンチマーク</title>
<style>
 body { margin:0; font-family:"Noto Sans CJK JP",sans-serif; font-size:18px; line-height:1.7;
        background:#fff; color:#222; }
 #bar { position:fixed; top:0; left:0; right:0; height:120px; background:#e8eef8;
        border-bottom:1px solid #99a; }
 #field { position:absolute; left:20px; top:20px; width:600px; height:80px; font-size:28px; }
 #btn { position:absolute; left:660px; top:20px; width:300px; height:80px; font-size:28px; }
 #text { padding:140px 40px 40px 40px; max-width:1100px; }
 h2 { color:#1f4e99; }
</style></head><body>
<div id="bar"><input id="field" autocomplete="off" placeholder="ここに入力"><button id="btn">押す (0)</button></div>
<div id="text">
HTML
  for i in $(seq 1 40); do
    cat <<HTML
<h2>第${i}章 情報セキュリティ対策基準</h2>
<p>本市は、住民の個人情報及び行政運営上重要な情報等を取り扱う情報システムを、マイナンバー利用事務系、LGWAN接続系及びインターネット接続系に分割し、それぞれの通信経路を分離する。インターネット接続系で閲覧した画面は、画面転送により無害化した上でLGWAN接続系の端末に表示する。</p>
<p>職員は、業務上必要な場合を除き、インターネット上のファイルをLGWAN接続系に持ち込んではならない。クリップボードの共有、ファイルの転送及び印刷のリダイレクトは行わない。利用者認証は必須とし、操作の記録を監査のために保存する。</p>
<p>情報セキュリティ管理者は、外部からの不正アクセス、マルウェア感染及び情報漏えいの防止のため、通信の監視、ソフトウェアの更新及び職員への教育を定期的に実施し、その結果を情報セキュリティ委員会に報告する。第${i}章の規定は、前章までの規定と合わせて適用する。</p>
HTML
  done
  cat <<'HTML'
</div>
<script>
 // What arrived is reported to the page server (its log), so the script can check it.
 function report(q) { fetch('/report?' + q).catch(function(){}); }
 var n = 0, btn = document.getElementById('btn'), field = document.getElementById('field');
 btn.addEventListener('click', function() {
   n += 1;
   btn.textContent = '押す (' + n + ')';
   document.getElementById('bar').style.background = (n % 2) ? '#d8f0d8' : '#e8eef8';
   report('clicks=' + n);
 });
 field.addEventListener('input', function() {
   report('typed=' + encodeURIComponent(field.value));
 });
</script>
</body></html>
HTML
} >"$page/index.html"
chmod -R a+rX "$page"

# ---------------------------------------------------------------------------------------------
# Processes, stopped in reverse order on exit.
pids=()
cleanup() {
  set +e
  say "stopping / 停止しています…"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[$i]}" 2>/dev/null
  done
  wait 2>/dev/null
  say "logs / ログ: $dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_port="$(helper free-port tcp)"
python3 -m http.server --bind 127.0.0.1 --directory "$page" "$http_port" \
  >"$dir/http.log" 2>&1 &
pids+=($!)

"$bin/tsuitate-gateway" ca init --dir "$dir/pki" >/dev/null
"$bin/tsuitate-gateway" ca issue-agent --dir "$dir/pki" --name bench-agent >/dev/null
printf '%s\n' "$password" | "$bin/tsuitate-gateway" user add bench --users "$dir/users.toml" >/dev/null

viewer_port="$(helper free-port udp)"
agent_port="$(helper free-port udp)"
admin_port="$(helper free-port tcp)"
admin="127.0.0.1:$admin_port"
cat >"$dir/gateway.toml" <<TOML
agent_listen = "127.0.0.1:$agent_port"
viewer_listen = "127.0.0.1:$viewer_port"
admin_listen = "$admin"
users_file = "users.toml"
audit_log = "audit.jsonl"

[tls]
ca = "pki/ca.pem"
cert = "pki/gateway.pem"
key = "pki/gateway-key.pem"

[session]
default_width = $width
default_height = $height
TOML

browser_user=""
if [ "$(id -u)" -eq 0 ]; then
  browser_user='browser_user = "tsuitate-browser"'
fi
cat >"$dir/agent.toml" <<TOML
$browser_user
agent_id = "bench-agent"
max_sessions = 1
start_url = "http://127.0.0.1:$http_port/index.html"
ca = "pki/ca.pem"
cert = "pki/agent-bench-agent.pem"
key = "pki/agent-bench-agent-key.pem"

[[gateways]]
addr = "127.0.0.1:$agent_port"
server_name = "localhost"
TOML

(cd "$dir" && exec "$bin/tsuitate-gateway" run --config "$dir/gateway.toml") 2>"$dir/gateway.log" &
gateway_pid=$!
pids+=("$gateway_pid")
(cd "$dir" && exec "$bin/tsuitate-agent" --config "$dir/agent.toml") 2>"$dir/agent.log" &
agent_pid=$!
pids+=("$agent_pid")

say "waiting for the agent to register / エージェントの接続を待っています…"
registered=0
for _ in $(seq 1 150); do
  if [ "$(helper metric "$admin" tsuitate_agents_connected)" = 1 ]; then
    registered=1
    break
  fi
  sleep 0.2
done
[ "$registered" = 1 ] || die "the agent did not register (see $dir/agent.log, $dir/gateway.log)"

export AGENT_PID="$agent_pid" GATEWAY_PID="$gateway_pid" ADMIN="$admin" SAMPLES="$dir/samples.jsonl"
export TSUITATE_PASSWORD="$password"
: >"$SAMPLES"

# Run the headless viewer with script file $2 (name $1) in the background; sets viewer_pid.
viewer_pid=""
start_viewer() {
  "$bin/tsuitate-viewer" --headless --gateway "127.0.0.1:$viewer_port" --server-name localhost \
    --ca "$dir/pki/ca.pem" --user bench --lang en --keep-session --script "$2" \
    --report "$dir/$1.report.json" --snapshot-dir "$dir/snapshots" \
    >"$dir/$1.viewer.log" 2>&1 &
  viewer_pid=$!
}
wait_viewer() {
  local code=0
  wait "$viewer_pid" || code=$?
  [ "$code" = 0 ] || die "viewer run $1 failed with exit code $code (see $dir/$1.viewer.log, $dir/$1.report.json)"
}

# ---------------------------------------------------------------------------------------------
# Warm-up: the session starts (Chromium launches, the page loads) and is kept for the runs.
mkdir -p "$dir/snapshots"
cat >"$dir/warmup.script" <<'SCRIPT'
expect-change 60000
wait 6000
snapshot warmup.png
SCRIPT
say "warm-up: starting the session / セッションを開始します…"
start_viewer warmup "$dir/warmup.script"
wait_viewer warmup

# The workload. Both runs replay it from the same state: the page is reloaded first.
settle_ms=4000
clicks=10
typed_words=(tsuitate 情報 セキュリティ 対策 基準 gateway 画面転送 無害化 LGWAN 接続系)
# What the field holds at the end: every word, then one Backspace.
expected_text="$(printf '%s' "${typed_words[@]}")"
expected_text="${expected_text%?}"
{
  echo "# reload, let the page settle"
  echo "key F5"
  echo "wait $settle_ms"
  echo "# idle: nothing changes on screen"
  echo "wait $idle_ms"
  echo "# scroll down and back up with the wheel"
  for _ in $(seq 1 40); do printf 'wheel 0 2\nwait 100\n'; done
  for _ in $(seq 1 20); do printf 'wheel 0 -4\nwait 100\n'; done
  echo "wait 1000"
  echo "# type into the field (ASCII and committed IME text)"
  echo "click 300 145"
  echo "wait 300"
  for w in "${typed_words[@]}"; do
    printf 'type %s\nwait 300\n' "$w"
  done
  echo "key Backspace"
  echo "wait 300"
  echo "# click the button"
  for _ in $(seq 1 "$clicks"); do printf 'click 810 145\nwait 400\n'; done
  echo "wait 1500"
  echo "snapshot workload-end.png"
} >"$dir/workload.script"
idle_from=$(((settle_ms + 2500) / 1000))
idle_len=$(((idle_ms - 3000) / 1000))

# Plays the workload once (name $1), sampling at start, around the idle window, and at the end.
run_workload() {
  local from
  from="$(wc -l <"$dir/http.log")"
  helper sample "$1:start"
  start_viewer "$1" "$dir/workload.script"
  sleep "$idle_from"
  helper sample "$1:idle_start"
  sleep "$idle_len"
  helper sample "$1:idle_end"
  wait_viewer "$1"
  helper sample "$1:end"
  sleep 0.5
  helper page-state "$dir/http.log" "$from" >"$dir/$1.page.json"
}

say "run 1: workload through tsuitate / 計測 1: tsuitate で台本を再生…"
run_workload run1

if [ "$no_x264" != 1 ]; then
  chrome="$(helper chromium "$agent_pid")"
  [ -n "$chrome" ] || die "no Chromium process found under the agent"
  display="$(helper environ "$chrome" DISPLAY)"
  xauth="$(helper environ "$chrome" XAUTHORITY)"
  [ -n "$display" ] || die "Chromium has no DISPLAY"
  say "run 2: same workload, ffmpeg x264 capturing $display / 計測 2: ffmpeg x264 で同じ台本…"
  export X264_OUT="$dir/x264.h264" X264_PROGRESS="$dir/x264.progress"
  XAUTHORITY="$xauth" ffmpeg -nostdin -hide_banner -loglevel error -progress "$X264_PROGRESS" \
    -f x11grab -framerate 30 -video_size "${width}x${height}" -i "$display" \
    -c:v libx264 -preset ultrafast -tune zerolatency -f h264 - >"$X264_OUT" 2>"$dir/ffmpeg.log" &
  export FFMPEG_PID=$!
  pids+=("$FFMPEG_PID")
  sleep 2
  kill -0 "$FFMPEG_PID" 2>/dev/null || die "ffmpeg did not start (see $dir/ffmpeg.log)"
  run_workload run2
  kill -INT "$FFMPEG_PID" 2>/dev/null || true
fi

# ---------------------------------------------------------------------------------------------
python3 - "$dir" "$width" "$height" "$no_x264" "$expected_text" "$clicks" <<'PY' | tee "$dir/results.txt"
import json, sys

d, width, height, no_x264 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
expected_text, expected_clicks = sys.argv[5], int(sys.argv[6])
samples = {}
for line in open(f"{d}/samples.jsonl"):
    s = json.loads(line)
    samples[s["label"]] = s
report = json.load(open(f"{d}/run1.report.json"))

def delta(run, key, a="start", b="end"):
    x, y = samples[f"{run}:{a}"].get(key), samples[f"{run}:{b}"].get(key)
    return None if x is None or y is None else y - x

def secs(run, a="start", b="end"):
    return samples[f"{run}:{b}"]["t"] - samples[f"{run}:{a}"]["t"]

def fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)

def ratio(a, b):
    return None if a is None or not b else a / b

t1 = secs("run1")
lat = report["latency_ms"]
idle_s = secs("run1", "idle_start", "idle_end")
idle_frames = delta("run1", "frames", "idle_start", "idle_end")
print()
print(f"== tsuitate, scripted workload at {width}x{height}, {t1:.1f} s (run 1) ==")
print(f"capture→decoded latency  p50 {lat['p50']:.1f} ms   p95 {lat['p95']:.1f} ms   p99 {lat['p99']:.1f} ms   max {lat['max']:.1f} ms")
print(f"frames decoded           {report['frames_decoded']} ({report['fps']:.1f} fps over the viewer's run), dropped {report['dropped_frames']}")
frames1, bytes1 = delta("run1", "frames"), delta("run1", "bytes")
print(f"frames relayed           {fmt(frames1, '.0f')}")
print(f"bytes per second         {fmt(ratio(bytes1, t1 * 1e3), '.1f')} kB/s ({fmt(ratio(bytes1, t1 * 125), '.0f')} kbit/s)")
agent1, tree1 = delta("run1", "agent_cpu"), delta("run1", "tree_cpu")
print(f"agent CPU per session    {fmt(ratio(agent1, t1), '.3f')} CPU-s/s (agent process: capture, convert, encode, QUIC)")
print(f"  with Xvfb + Chromium   {fmt(ratio(tree1, t1), '.3f')} CPU-s/s (agent and all its descendants)")
print(f"gateway CPU              {fmt(ratio(delta('run1', 'gateway_cpu'), t1), '.3f')} CPU-s/s")
print(f"idle window              {idle_s:.1f} s: {fmt(idle_frames, '.0f')} frames relayed (goal 0), agent CPU {fmt(ratio(delta('run1', 'agent_cpu', 'idle_start', 'idle_end'), idle_s), '.3f')} CPU-s/s")

def page_check(run):
    try:
        p = json.load(open(f"{d}/{run}.page.json"))
    except (OSError, ValueError):
        return f"{run}: no page report"
    text = "exact" if p["typed"] == expected_text else f"DIFFERENT: got {p['typed']!r}, expected {expected_text!r}"
    return f"{run}: typed text {text}; clicks seen {p['clicks']}/{expected_clicks}"
print(f"page check               {page_check('run1')}")

if not no_x264 and "run2:start" in samples:
    t2 = secs("run2")
    agent2 = delta("run2", "agent_cpu")
    ff = delta("run2", "ffmpeg_cpu")
    xb = delta("run2", "x264_bytes")
    xf = delta("run2", "x264_frames")
    frames2, bytes2 = delta("run2", "frames"), delta("run2", "bytes")
    xidle = delta("run2", "x264_bytes", "idle_start", "idle_end")
    xidle_cpu = delta("run2", "ffmpeg_cpu", "idle_start", "idle_end")
    idle2 = secs("run2", "idle_start", "idle_end")
    print()
    print(f"== same workload, tsuitate vs ffmpeg x264 (ultrafast, zerolatency, 30 fps) (run 2, {t2:.1f} s) ==")
    rows = [
        ("encode CPU, CPU-s/s", ratio(agent2, t2), ratio(ff, t2), ".3f"),
        ("frames encoded", frames2, xf, ".0f"),
        ("CPU ms per frame", ratio(agent2, ratio(frames2, 1e3)), ratio(ff, ratio(xf, 1e3)), ".2f"),
        ("bytes", bytes2, xb, ".0f"),
        ("kbit/s", ratio(bytes2, t2 * 125), ratio(xb, t2 * 125), ".0f"),
        ("idle window bytes", delta("run2", "bytes", "idle_start", "idle_end"), xidle, ".0f"),
        ("idle window CPU-s/s", ratio(delta("run2", "agent_cpu", "idle_start", "idle_end"), idle2), ratio(xidle_cpu, idle2), ".3f"),
    ]
    print(f"{'':24}{'tsuitate agent':>16}{'ffmpeg x264':>16}{'ratio':>10}")
    for name, a, b, spec in rows:
        print(f"{name:24}{fmt(a, spec):>16}{fmt(b, spec):>16}{fmt(ratio(a, b), '.2f'):>10}")
    print(f"page check {page_check('run2')}")
    print(f"(run 1 agent CPU for the same workload without ffmpeg running: {fmt(ratio(agent1, t1), '.3f')} CPU-s/s;"
          f" ratio to x264 {fmt(ratio(ratio(agent1, t1), ratio(ff, t2)), '.2f')})")
print()
print(f"details: {d}/samples.jsonl, {d}/run1.report.json, {d}/snapshots/, logs in {d}")
PY
