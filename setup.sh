#!/usr/bin/env bash
# P2P FACOM set-up on Debian/Ubuntu: installs what is missing, then runs.
#   ./setup.sh demo     install, then start the classroom demo
#   ./setup.sh test     install (with test tools), then run the whole suite
#   ./setup.sh lint     install (with test tools), then run ruff
#   ./setup.sh install  install only
# Debian packages need root: run as root, or as a user with sudo.  Without
# either it names the missing packages and the command to install them.
set -euo pipefail

APT_RUNTIME="ffmpeg python3 python3-venv python3-dev python3-tk gcc libasound2-dev"
# Test tools only: no server package (a test command must leave no daemon
# behind); bench/ installs what it measures against when it runs.
APT_TEST="xvfb x11-apps imagemagick xdotool nftables iproute2 tshark gettext"

# The Debian packages among "$@" that are not installed, one line.
missing_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$pkg")
  done
  echo "${missing[*]}"
}

# Install the missing packages among "$@"; one line and exit 1 when that
# cannot be done here (no apt-get, or neither root nor sudo).
install_apt() {
  local missing
  read -r -a missing <<< "$(missing_packages "$@")"
  [ ${#missing[@]} -eq 0 ] && return 0
  local as_root=()
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install: ${missing[*]} (no apt-get here)" >&2
    exit 1
  elif [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: missing Debian packages: ${missing[*]}; install them" \
        "as root, then run ./setup.sh again: su -c 'apt-get install -y" \
        "${missing[*]}' (or install sudo)" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  echo "setup: installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
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

main() {
  cd "$(dirname "$0")"
  local what=${1:-demo}
  shift || true
  case "$what" in
    test|lint)
      install_apt $APT_RUNTIME $APT_TEST
      install_venv requirements-test.txt
      if [ "$what" = lint ]; then
        exec .venv/bin/ruff check . "$@"
      fi
      # -rs: the reason of every skipped test.
      exec .venv/bin/python -m pytest -q -rs tests "$@" ;;
    demo|install)
      install_apt $APT_RUNTIME
      install_venv requirements.txt
      if [ "$what" = demo ]; then
        exec .venv/bin/python p2p_facom.py demo "$@"
      fi
      echo "setup: done. Start the demo with: ./setup.sh demo" ;;
    *)
      echo "usage: ./setup.sh demo|test|lint|install" >&2
      exit 2 ;;
  esac
}

# Sourced (tests/test_setup.py), only the functions are defined.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
