#!/usr/bin/env bash
# End-to-end benchmark of the real stack on a scripted browsing workload (docs/benchmarks.md).
# 実際の構成（ゲートウェイ・エージェント＋Chromium・ヘッドレスビューア）で、閲覧操作の台本を
# 再生して性能を測ります（docs/benchmarks.md）。
#
#   scripts/bench-e2e.sh
#
# This wrapper installs what the benchmark needs (scripts/install-deps.sh, the browser user, and
# ffmpeg and x11vnc for the comparisons), builds the release binaries, and runs the benchmark itself:
# the Rust program benches/src/bin/bench-e2e.rs on the test kit (tsuitate-testkit), which
# explains every step and the environment variables:
#   TSUITATE_BENCH_SIZE     session size WxH (default 1280x720)
#   TSUITATE_BENCH_IDLE_MS  idle period of the workload in ms (default 12000, at least 6000)
#   TSUITATE_BENCH_NO_X264=1  skip the ffmpeg x264 run (no ffmpeg needed)
#   TSUITATE_BENCH_NO_VNC=1   skip the x11vnc run (no x11vnc needed)
#   TSUITATE_BENCH_NO_WEB=1   skip the web viewer run
#   TSUITATE_BENCH_ENCODING   the agent's encoding: damage (default) or openh264
# Run as root (Chromium then runs as the unprivileged user from scripts/setup-browser-user.sh,
# and ffmpeg can read its display's X authority). Everything it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/setup-browser-user.sh
# Benchmark-only packages, installed only when missing: install_missing <command> <package>.
install_missing() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "[bench-e2e] installing $2 (benchmark only) / $2 をインストールします（ベンチマーク専用）" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
[ "${TSUITATE_BENCH_NO_X264:-0}" = 1 ] || install_missing ffmpeg ffmpeg
[ "${TSUITATE_BENCH_NO_VNC:-0}" = 1 ] || install_missing x11vnc x11vnc
echo "[bench-e2e] building release binaries / リリースビルド中…" >&2
cargo build --release --locked -q --bins -p tsuitate-gateway -p tsuitate-agent -p tsuitate-viewer -p tsuitate-web \
  -p tsuitate-benches
exec target/release/bench-e2e
