#!/usr/bin/env bash
# Creates the unprivileged accounts the host agent runs Chromium as (Chromium keeps its sandbox
# and never runs as root): a pool tsuitate-browser-1 … -N, one per concurrent session
# (browser_user_pool = "tsuitate-browser"; N = TSUITATE_BROWSER_POOL, default 16, at least the
# sum of max_sessions of the agents on this host), and the single tsuitate-browser account
# (browser_user, sessions sharing one account). Idempotent. Only acts when run as root.
# Chromium をサンドボックス付き・非 root で動かすための専用ユーザー（セッションごとのプール）を作成します。
set -euo pipefail
user="${TSUITATE_BROWSER_USER:-tsuitate-browser}"
pool="${TSUITATE_BROWSER_POOL:-16}"
if [ "$(id -u)" -ne 0 ]; then
  exit 0
fi
created=0
for name in "$user" $(seq -f "$user-%g" 1 "$pool"); do
  if ! id "$name" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group "$name"
    created=$((created + 1))
  fi
done
if [ "$created" -gt 0 ]; then
  echo "tsuitate: created $created browser account(s) ($user, $user-1…$user-$pool) / ブラウザ用ユーザーを $created 件作成しました"
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
