#!/usr/bin/env bash
# Session start time (login → first picture) before and after the browser isolation of issue 11,
# side by side in one run (docs/benchmarks.md §Session start). Builds the agent of the commit before
# the isolation work (TSUITATE_BEFORE_COMMIT, default 7c9a712) in a temporary worktree, then
# alternates logins through it and through the current agent. Must run as root.
# ブラウザ隔離の前後で、ログインから最初の画面までの時間を交互に測ります（root で実行）。
#
# Usage: scripts/bench-session-start.sh [ROUNDS]   (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."

before="${TSUITATE_BEFORE_COMMIT:-7c9a712}"
if [ "$(id -u)" -ne 0 ]; then
  echo "[bench-session-start] run as root: both agents start Chromium as other accounts / root で実行してください" >&2
  exit 2
fi
scripts/install-deps.sh
scripts/setup-browser-user.sh
work="$(mktemp -d /tmp/tsuitate-before.XXXXXX)"
cleanup() {
  git worktree remove --force "$work/src" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "[bench-session-start] building the agent of $before / $before のエージェントをビルド中…" >&2
git worktree add --detach -q "$work/src" "$before"
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_TARGET_DIR="$work/target" \
  cargo build --release -q -p tsuitate-agent --manifest-path "$work/src/Cargo.toml"
echo "[bench-session-start] building release binaries / リリースビルド中…" >&2
cargo build --release --locked -q --bins -p tsuitate-gateway -p tsuitate-agent -p tsuitate-viewer \
  -p tsuitate-benches
target/release/bench-session-start "$work/target/release/tsuitate-agent" "${1:-8}"
