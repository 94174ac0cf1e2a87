#!/usr/bin/env bash
# Builds the native viewer as one portable Windows program (docs/viewer.md §Windows):
#   target/x86_64-pc-windows-gnu/<profile>/tsuitate-viewer.exe
# that needs no DLL beside it (C++ runtime, libgcc and winpthread linked statically), then checks
# that it imports only DLLs every Windows has. Installs what it needs where missing: Debian's
# mingw-w64 C/C++ cross compilers (openh264 is C++ with nasm assembly; nasm builds it for win64)
# and rustup's x86_64-pc-windows-gnu target. Exit 3 when the target cannot be installed here.
# Windows 版ビューアを 1 つの実行ファイル（DLL 不要）としてクロスビルドします。
#
# Usage: scripts/build-windows.sh [--debug]   (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
flag=(--release)
if [ "${1:-}" = "--debug" ]; then
  profile=debug
  flag=()
fi
target=x86_64-pc-windows-gnu

packages=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 binutils-mingw-w64-x86-64 nasm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[windows] installing / インストール: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "[windows] adding the Rust target $target / Rust のターゲットを追加します" >&2
  if ! rustup target add "$target"; then
    echo "[windows] the Rust target $target cannot be installed on this machine: the Windows build is skipped / このマシンでは Windows 向けターゲットを導入できないため、Windows 版のビルドを省略します" >&2
    exit 3
  fi
fi

# Debian's mingw-w64 compilers for the C/C++ in dependencies (openh264, ring), and a fully
# static link: no libstdc++-6.dll, libgcc_s_seh-1.dll or libwinpthread-1.dll beside the .exe.
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export CXX_x86_64_pc_windows_gnu=x86_64-w64-mingw32-g++
export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
# (openh264's build asks for libstdc++ as a DLL; CXXSTDLIB empty stops that, and the static
# archive is linked at the end, followed by what it needs itself: libgcc's thread and TLS
# helpers, mingwex and msvcrt.)
export CXXSTDLIB_x86_64_pc_windows_gnu=""
static_cxx="-C link-arg=-Wl,-Bstatic"
for lib in stdc++ gcc gcc_eh mingw32 mingwex msvcrt kernel32; do
  static_cxx="$static_cxx -C link-arg=-l$lib"
done
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-static -C link-arg=-static-libgcc $static_cxx"

echo "[windows] building tsuitate-viewer.exe ($profile) / ビルド中…" >&2
cargo build --locked -q "${flag[@]}" -p tsuitate-viewer --bin tsuitate-viewer --target "$target"
exe="target/$target/$profile/tsuitate-viewer.exe"

# Only DLLs of Windows itself may be imported.
dlls="$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | sort -u)"
bad=""
while read -r dll; do
  [ -z "$dll" ] && continue
  lower="$(printf '%s' "$dll" | tr 'A-Z' 'a-z')"
  case "$lower" in
    kernel32.dll | user32.dll | gdi32.dll | advapi32.dll | ws2_32.dll | ntdll.dll | \
      bcrypt.dll | bcryptprimitives.dll | userenv.dll | shell32.dll | ole32.dll | oleaut32.dll | \
      imm32.dll | dwmapi.dll | uxtheme.dll | comctl32.dll | shlwapi.dll | msvcrt.dll | \
      api-ms-win-*.dll | ucrtbase.dll | winmm.dll | crypt32.dll | secur32.dll | iphlpapi.dll | \
      propsys.dll | opengl32.dll | version.dll | dbghelp.dll | synchronization.dll) ;;
    *) bad="$bad $dll" ;;
  esac
done <<<"$dlls"
if [ -n "$bad" ]; then
  echo "[windows] $exe needs DLLs that Windows does not ship:$bad / Windows に無い DLL が必要です" >&2
  exit 1
fi
size="$(du -h "$exe" | cut -f1)"
echo "[windows] $exe ($size) imports only Windows DLLs: $(echo $dlls | tr '\n' ' ') / Windows 標準の DLL のみ使用" >&2
