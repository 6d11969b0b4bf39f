#!/usr/bin/env bash
# P2P FACOM set-up on Debian/Ubuntu: installs what is missing, then runs.
#   ./setup.sh demo     install, then start the classroom demo
#   ./setup.sh test     install (with test tools), then run the whole suite
#   ./setup.sh install  install only
set -euo pipefail
cd "$(dirname "$0")"

what=${1:-demo}
shift || true
case "$what" in demo|test|install) ;; *)
  echo "usage: ./setup.sh demo|test|install" >&2; exit 2 ;;
esac

APT_RUNTIME="ffmpeg python3 python3-venv python3-dev python3-tk gcc libasound2-dev"
APT_TEST="xvfb x11-apps imagemagick xdotool nftables iproute2 atftp atftpd"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install: ${missing[*]} (no apt-get here)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${missing[@]}" >/dev/null
}

install_venv() {
  local reqs=$1
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  local stamp=".venv/.installed-$(cat "$reqs" requirements.txt | cksum | cut -d' ' -f1)"
  if [ ! -e "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r "$reqs"
    touch "$stamp"
  fi
}

if [ "$what" = test ]; then
  install_apt $APT_RUNTIME $APT_TEST
  install_venv requirements-test.txt
  exec .venv/bin/python -m pytest -q tests "$@"
fi
install_apt $APT_RUNTIME
install_venv requirements.txt
[ "$what" = demo ] && exec .venv/bin/python p2p_facom.py demo "$@"
echo "setup: done. Start the demo with: ./setup.sh demo"
