#!/bin/sh
# Prepare a Debian host (or CI runner, as root) for tsuitate-agent and its tests.
#
# - Xvfb, Chromium with its Japanese UI resources, CJK fonts, nasm (openh264 build), NSS tools
#   (extra_ca for the browser);
# - the unprivileged account Chromium runs as (the agent never runs Chromium as root and never
#   passes --no-sandbox). Chromium's sandbox uses unprivileged user namespaces, which Debian 12
#   allows by default; on kernels/distros that restrict them (e.g. Ubuntu 24.04 AppArmor
#   `kernel.apparmor_restrict_unprivileged_userns=1`) allow them for Chromium or set
#   `sysctl -w kernel.unprivileged_userns_clone=1` where that knob exists.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root / root で実行してください" >&2
    exit 1
fi

if [ "${SKIP_APT:-0}" != 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
        xvfb chromium chromium-l10n fonts-noto-cjk nasm libnss3-tools
fi

USER_NAME="${TSUITATE_BROWSER_USER:-tsuitate-browser}"
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$USER_NAME"
fi

mkdir -p /tmp/.X11-unix
chmod 1777 /tmp/.X11-unix

# Check that an unprivileged user can create the namespaces Chromium's sandbox needs.
if ! setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --clear-groups \
        unshare --user --map-root-user --pid --fork true 2>/dev/null; then
    echo "warning: unprivileged user namespaces are not available; Chromium's sandbox will fail" >&2
    echo "警告: 非特権ユーザー名前空間が使えません。Chromium のサンドボックスが動作しません" >&2
    exit 1
fi
echo "ok: $USER_NAME ready, user namespaces available"
