#!/usr/bin/env bash
# P2P FACOM: start the classroom demo with the project's .venv.
#
#   launcher/p2p-facom-launcher.sh [demo options]   the whole demo: three
#       local seeders and the leecher's window, which downloads the sample
#       song by itself (preview on) and says what to try next; closing the
#       window stops the seeders ("p2p_facom.py demo --window")
#   launcher/p2p-facom-launcher.sh --window [gui.py options]
#       the leecher's window alone, idle (seeders elsewhere)
#   launcher/p2p-facom-launcher.sh --install        add P2P FACOM to the
#       applications menu (and the desktop, if any)
#
# launcher/p2p-facom.desktop runs this script on a double click: a teacher
# who double-clicks expects the lesson, not an empty window.  Problems
# (set-up never run, no display, ...) are shown in a small window when
# zenity or xmessage is there, and always on stderr.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(dirname "$here")
python="$project/.venv/bin/python"

# Desktop sessions export a SESSION_MANAGER that Tk's XSMP code cannot
# always reach; the original program died on that error.  Nobody needs it.
unset SESSION_MANAGER

case "${LC_ALL:-${LC_MESSAGES:-${LANG:-}}}" in
  pt*) pt=1 ;;
  *) pt= ;;
esac

tell() {  # tell MESSAGE: stderr, plus a window when there is a screen
  echo "p2p-facom: $1" >&2
  [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || return 0
  if command -v zenity >/dev/null 2>&1; then
    zenity --error --no-markup --title="P2P FACOM" --text="$1" \
      >/dev/null 2>&1 && return 0
  fi
  if command -v xmessage >/dev/null 2>&1; then
    xmessage -center -title "P2P FACOM" "$1" >/dev/null 2>&1
  fi
  return 0
}

desktop_quote() {  # a path as one quoted argument of a desktop Exec key
  local s=$1
  s=${s//\\/\\\\\\\\}
  s=${s//\"/\\\\\"}
  s=${s//\`/\\\\\`}
  s=${s//\$/\\\\\$}
  printf '"%s"' "$s"
}

install_entry() {
  local apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
  local entry="$apps/p2p-facom.desktop" desktop
  mkdir -p "$apps" || return 1
  sed -e '/^#/d' -e "s|^Exec=.*|Exec=$(desktop_quote "$here/p2p-facom-launcher.sh" \
    | sed 's/[|&\\]/\\&/g')|" "$here/p2p-facom.desktop" >"$entry" || return 1
  chmod +x "$entry"
  echo "installed $entry"
  desktop=$(xdg-user-dir DESKTOP 2>/dev/null || echo "$HOME/Desktop")
  if [ -d "$desktop" ] && [ "$desktop" != "$HOME" ]; then
    cp "$entry" "$desktop/p2p-facom.desktop" && chmod +x \
      "$desktop/p2p-facom.desktop" && echo "installed $desktop/p2p-facom.desktop"
    gio set "$desktop/p2p-facom.desktop" metadata::trusted true \
      >/dev/null 2>&1 || true
  fi
}

if [ "${1:-}" = "--install" ]; then
  install_entry
  exit
fi

set_up() {  # the .venv exists and has what the window needs
  [ -x "$python" ] && "$python" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("matplotlib", "tkinter")))' \
    >/dev/null 2>&1
}

if ! set_up; then
  if [ -n "$pt" ]; then
    tell "O P2P FACOM ainda não foi instalado. Abra um terminal na pasta $project e rode: ./setup.sh demo"
  else
    tell "P2P FACOM is not set up yet. Open a terminal in $project and run: ./setup.sh demo"
  fi
  exit 1
fi

cd "$project" || exit 1
errors=$(mktemp "${TMPDIR:-/tmp}/p2p-facom.XXXXXX") || errors=/dev/null
if [ "${1:-}" = "--window" ]; then
  shift
  set -- gui.py "$@"
else
  set -- p2p_facom.py demo --window "$@"
fi
"$python" "$@" 2>"$errors"
status=$?
if [ "$errors" != /dev/null ]; then
  cat "$errors" >&2
  if [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ -s "$errors" ]; then
    message=$(tail -n 3 "$errors")
    rm -f "$errors"
    [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && tell "$message" 2>/dev/null
  else
    rm -f "$errors"
  fi
fi
exit "$status"
