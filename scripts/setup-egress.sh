#!/usr/bin/env bash
# Optional egress rules for the agent host (docs/operations.md §Egress): the session accounts of
# the browser pool (PREFIX-1 … PREFIX-N in /etc/passwd) may open connections only to the
# configured proxy; everything else they send (other hosts, the agent host's own services on
# loopback, DNS) is rejected and counted. Other accounts are not affected. Uses nftables
# (`meta skuid`); the table `inet tsuitate_egress` is replaced each time the script runs.
# セッション用ユーザーの通信をプロキシ宛てだけに制限します（任意）。
#
# Usage: scripts/setup-egress.sh PROXY_ADDRESS PROXY_PORT [--prefix tsuitate-browser] [--print]
#   --print   only print the rules / 規則を表示するだけ
#   --remove  delete the table / 規則を削除
set -euo pipefail

prefix="tsuitate-browser"
print=0
remove=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a value}"; shift 2 ;;
    --print) print=1; shift ;;
    --remove) remove=1; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ "$remove" = 1 ]; then
  nft delete table inet tsuitate_egress 2>/dev/null || true
  echo "[egress] removed / 削除しました" >&2
  exit 0
fi
if [ "${#args[@]}" -ne 2 ]; then
  echo "usage: $0 PROXY_ADDRESS PROXY_PORT [--prefix NAME] [--print] | --remove" >&2
  echo "使い方: $0 プロキシのIPアドレス ポート [--prefix 名前] [--print] | --remove" >&2
  exit 2
fi
addr="${args[0]}"
port="${args[1]}"
case "$addr" in
  *:*) family="ip6" ;;
  *.*.*.*) family="ip" ;;
  *) echo "[egress] $addr: an IPv4 or IPv6 address, not a name / IP アドレスで指定してください" >&2; exit 2 ;;
esac
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "[egress] $port: a port 1-65535 / ポートは 1〜65535" >&2
  exit 2
fi
uids="$(awk -F: -v p="$prefix-" 'index($1, p) == 1 && substr($1, length(p) + 1) ~ /^[1-9][0-9]*$/ && $3 != 0 { print $3 }' /etc/passwd | sort -n | paste -sd, -)"
if [ -z "$uids" ]; then
  echo "[egress] no accounts $prefix-1… in /etc/passwd (scripts/setup-browser-user.sh) / アカウントがありません" >&2
  exit 1
fi
rules="table inet tsuitate_egress {
  set session_uids {
    type uid
    elements = { $uids }
  }
  chain output {
    type filter hook output priority filter; policy accept;
    meta skuid @session_uids jump session
  }
  chain session {
    $family daddr $addr tcp dport $port accept
    meta l4proto tcp counter reject with tcp reset
    counter reject with icmpx type admin-prohibited
  }
}"
if [ "$print" = 1 ]; then
  echo "$rules"
  exit 0
fi
command -v nft >/dev/null || { echo "[egress] nft not found (apt-get install nftables) / nft がありません" >&2; exit 1; }
nft delete table inet tsuitate_egress 2>/dev/null || true
echo "$rules" | nft -f -
echo "[egress] session accounts ($uids) may reach only $addr:$port / セッション用ユーザーは $addr:$port にだけ接続できます" >&2
