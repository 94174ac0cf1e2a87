#!/usr/bin/env bash
# Runs every test of tsuitate: the README's test command, and what .ci/run calls.
#   1. installs the Debian packages the build and the real-browser tests need (scripts/install-deps.sh),
#      and, for the tests only, redis-server (shared lockout) and python3-venv (schema check)
#   2. the Windows build of the viewer (scripts/build-windows.sh --debug: one portable .exe that
#      imports only Windows DLLs) and Wine (wine64) to run it; TSUITATE_NO_WINDOWS=1 skips both;
#      a machine that cannot install the Rust target says so and goes on
#   3. cargo test --workspace (unit, property, integration and end-to-end tests with real
#      Xvfb + Chromium + QUIC on loopback, and the Windows viewer under Wine)
#   4. deploy/kubernetes against the Kubernetes API schemas (kubernetes-validate from PyPI)
#   5. a short fuzz smoke run of every protocol fuzz target (TSUITATE_FUZZ_SECONDS, default 15;
#      0 skips it)
# すべてのテストを実行します（依存パッケージの導入、cargo test、短いファジング）。
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh redis-server python3-venv   # test-only: the shared-lockout test, the manifests' schema check
scripts/setup-browser-user.sh

# The Windows viewer first, so that the end-to-end test can run it under Wine.
if [ "${TSUITATE_NO_WINDOWS:-0}" != 1 ]; then
  status=0
  scripts/build-windows.sh --debug || status=$?
  if [ "$status" -eq 3 ]; then
    echo "Windows build skipped: the Rust target cannot be installed here / Windows 版のビルドは省略しました" >&2
  elif [ "$status" -ne 0 ]; then
    echo "the Windows build of the viewer failed / Windows 版ビューアのビルドに失敗しました" >&2
    exit "$status"
  else
    if ! dpkg-query -W -f='${Status}' wine64 2>/dev/null | grep -q "install ok installed"; then
      echo "tsuitate: installing wine64 (runs the Windows viewer in the tests) / wine64 をインストールします" >&2
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wine64 >/dev/null
    fi
    TSUITATE_WINDOWS_VIEWER="$PWD/target/x86_64-pc-windows-gnu/debug/tsuitate-viewer.exe"
    export TSUITATE_WINDOWS_VIEWER
  fi
fi

cargo test --workspace --locked

# deploy/kubernetes against the Kubernetes API schemas (kubernetes-validate from PyPI, in a
# throwaway virtual environment; e2e/tests/kubernetes.rs checks the rest). Without access to PyPI
# the schema check is skipped, and says so.
kv="$(mktemp -d)"
if python3 -m venv "$kv" >/dev/null 2>&1 && "$kv/bin/pip" install -q kubernetes-validate >/dev/null 2>&1; then
  manifests=()
  for f in deploy/kubernetes/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
  done
  if ! "$kv/bin/kubernetes-validate" -k 1.30.0 --strict "${manifests[@]}" >"$kv/out" 2>&1; then
    grep -v '^INFO' "$kv/out" >&2
    echo "deploy/kubernetes: a manifest does not match the Kubernetes 1.30 schemas" >&2
    exit 1
  fi
  echo "deploy/kubernetes: every manifest matches the Kubernetes 1.30 schemas"
else
  echo "kubernetes-validate could not be installed (no PyPI?): the manifests' schema check is skipped / マニフェストのスキーマ検査は省略しました" >&2
fi
rm -rf "$kv"

fuzz_seconds="${TSUITATE_FUZZ_SECONDS:-15}"
if [ "$fuzz_seconds" -gt 0 ]; then
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  for target in frame_decoder viewer_messages agent_messages sanitizer sanitizer_decode page_messages; do
    mkdir -p "$work/$target"
    cp protocol/fuzz/corpus/"$target"/* "$work/$target/"
    echo "fuzz smoke: $target (${fuzz_seconds}s)"
    if ! (cd protocol && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$work/$target" -- \
      -max_total_time="$fuzz_seconds" -print_final_stats=1 >"$work/$target.log" 2>&1); then
      tail -n 60 "$work/$target.log"
      echo "fuzz target $target failed (reproducer in protocol/fuzz/artifacts/$target)" >&2
      exit 1
    fi
    grep -E '^stat::number_of_executed_units' "$work/$target.log" || true
  done
fi
echo "all tests passed / すべてのテストに合格しました"
