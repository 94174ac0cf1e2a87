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
  useradd --system --create-home --home-dir "/var/lib/$user" --shell /usr/sbin/nologin "$user"
  echo "tsuitate: created browser user $user / ブラウザ用ユーザー $user を作成しました"
fi
