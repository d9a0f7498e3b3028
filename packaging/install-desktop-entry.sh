#!/usr/bin/env bash
# Install (or remove) INT8 Studio's desktop entry and icon for the current user.
#
#   packaging/install-desktop-entry.sh [--exec PATH]   install
#   packaging/install-desktop-entry.sh --uninstall     remove what install put there
#
# Files go under ${XDG_DATA_HOME:-~/.local/share}: applications/int8-studio.desktop and
# icons/hicolor/{scalable,256x256}/apps/int8-studio.{svg,png}. The entry runs `int8-studio gui`;
# when `int8-studio` is not on PATH it points at --exec, else at the bundle in dist/ if built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
ENTRY="$APPS/int8-studio.desktop"
SVG="$ICONS/scalable/apps/int8-studio.svg"
PNG="$ICONS/256x256/apps/int8-studio.png"

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

refresh() {
    # Refresh the menu and icon caches only where they already exist: a new, then stale, cache
    # would hide icons installed later by tools that do not update it.
    if [[ -f "$APPS/mimeinfo.cache" ]] && command -v update-desktop-database >/dev/null; then
        update-desktop-database -q "$APPS" || true
    fi
    if [[ -f "$ICONS/icon-theme.cache" ]] && command -v gtk-update-icon-cache >/dev/null; then
        gtk-update-icon-cache -q -t "$ICONS" || true
    fi
}

EXEC=""
UNINSTALL=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --uninstall) UNINSTALL=1 ;;
        --exec) EXEC="${2:?--exec needs a path}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-desktop-entry: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [[ $UNINSTALL -eq 1 ]]; then
    rm -f "$ENTRY" "$SVG" "$PNG"
    refresh
    echo "removed $ENTRY and the int8-studio icons from $ICONS"
    exit 0
fi

# The entry and icons: from the checkout, or from the bundle's resources next to --exec.
RES="$ROOT/resources"
if [[ ! -f "$RES/desktop/int8-studio.desktop" && -n "$EXEC" ]]; then
    RES="$(dirname "$EXEC")/_internal/resources"
fi
for f in desktop/int8-studio.desktop icons/int8-studio.svg icons/int8-studio.png; do
    [[ -f "$RES/$f" ]] || { echo "install-desktop-entry: $RES/$f not found" >&2; exit 1; }
done

if [[ -z "$EXEC" ]] && ! command -v int8-studio >/dev/null && [[ -x "$ROOT/dist/int8-studio/int8-studio" ]]; then
    EXEC="$ROOT/dist/int8-studio/int8-studio"
fi
if [[ -n "$EXEC" ]]; then
    EXEC="$(cd "$(dirname "$EXEC")" && pwd)/$(basename "$EXEC")"
    [[ -x "$EXEC" ]] || { echo "install-desktop-entry: $EXEC is not an executable" >&2; exit 1; }
    # Desktop-entry quoting of such characters is fiddly; such a path is better moved.
    if [[ "$EXEC" =~ [\"\`\$\\%] ]]; then
        echo "install-desktop-entry: path has one of \" \` \$ \\ %: $EXEC" >&2
        exit 1
    fi
    QUOTED="$EXEC"
    [[ "$EXEC" =~ [[:space:]] ]] && QUOTED="\"$EXEC\""
elif ! command -v int8-studio >/dev/null; then
    echo "install-desktop-entry: warning: int8-studio is not on PATH; the menu entry will not" \
        "start until it is (or rerun with --exec /path/to/int8-studio)" >&2
fi

mkdir -p "$APPS" "$(dirname "$SVG")" "$(dirname "$PNG")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tmp="$work/int8-studio.desktop"  # desktop-file-validate insists on the .desktop name
if [[ -n "$EXEC" ]]; then
    sed -e "s|^Exec=int8-studio |Exec=$QUOTED |" -e "s|^TryExec=int8-studio\$|TryExec=$EXEC|" \
        "$RES/desktop/int8-studio.desktop" > "$tmp"
else
    cp "$RES/desktop/int8-studio.desktop" "$tmp"
fi
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate --no-hints "$tmp" >&2 || { echo "install-desktop-entry: invalid entry" >&2; exit 1; }
fi
# Copied beside its final name, then renamed: a menu never reads a half-written entry.
install -m 644 "$tmp" "$APPS/.int8-studio.desktop.new"
mv -f "$APPS/.int8-studio.desktop.new" "$ENTRY"
install -m 644 "$RES/icons/int8-studio.svg" "$SVG"
install -m 644 "$RES/icons/int8-studio.png" "$PNG"
refresh
echo "installed $ENTRY"
echo "installed $SVG and $PNG"
grep '^Exec=' "$ENTRY"
