#!/usr/bin/env bash
# Installs the Debian packages tsuitate needs, where missing:
#   nasm (openh264's assembly, ≈3× faster encode), xvfb + chromium (the host agent's browser)
#   + chromium-l10n (its Japanese UI), libnss3-tools (certutil, for the agent's extra_ca),
#   fonts-noto-cjk (Japanese pages render), xauth, procps, and the X libraries the viewer
#   window loads at run time (libxkbcommon-x11-0, libxcursor1, libx11-xcb1), python3 (the demo
#   serves its welcome page over loopback HTTP: the browser's policy blocks file://).
# Usage: scripts/install-deps.sh [EXTRA-PACKAGE...]   (as root, or with sudo available)
#   scripts/test.sh adds the test-only redis-server (the shared-lockout test starts its own).
set -euo pipefail

packages=(nasm xvfb chromium chromium-l10n fonts-noto-cjk libnss3-tools xauth procps util-linux
  libxkbcommon-x11-0 libxcursor1 libx11-xcb1 python3 "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "tsuitate: installing Debian packages / Debian パッケージをインストールします: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "error: need root or sudo to install ${missing[*]} / root 権限または sudo が必要です" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
