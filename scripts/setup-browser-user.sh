#!/usr/bin/env bash
# Creates the unprivileged account the host agent runs Chromium as (Chromium keeps its sandbox
# and never runs as root). Idempotent. Only acts when run as root.
# Chromium をサンドボックス付き・非 root で動かすための専用ユーザーを作成します。
set -euo pipefail
user="${TSUITATE_BROWSER_USER:-tsuitate-browser}"
if [ "$(id -u)" -ne 0 ]; then
  exit 0
fi
if ! id "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  echo "tsuitate: created browser user $user / ブラウザ用ユーザー $user を作成しました"
fi
# Xvfb sockets live here; the browser user must reach them.
mkdir -p /tmp/.X11-unix
chmod 1777 /tmp/.X11-unix
# Chromium's sandbox needs unprivileged user namespaces (Debian 12 allows them by default;
# Ubuntu 24.04's AppArmor restriction or kernel.unprivileged_userns_clone=0 forbid them).
if ! setpriv --reuid="$user" --regid="$user" --clear-groups \
    unshare --user --map-root-user --pid --fork true 2>/dev/null; then
  echo "error: unprivileged user namespaces are unavailable, so Chromium's sandbox cannot run." >&2
  echo "エラー: 非特権ユーザー名前空間が使えないため、Chromium のサンドボックスが動作しません。" >&2
  echo "  try: sysctl -w kernel.unprivileged_userns_clone=1 (or allow userns for chromium in AppArmor)" >&2
  exit 1
fi
