#!/usr/bin/env bash
# Installs what the tests and benchmarks need from Debian when this machine lacks it.
# Usage: scripts/ensure-deps.sh [NAME...]   (no arguments: everything; names below)
set -euo pipefail

# name: the commands that must exist, and the Debian package that brings them.
declare -A commands=(
  [go-dqlite]="dqlite-demo dqlite"   # the real dqlite programs, for interop tests and the benchmark baseline
  [chromium]="chromium"              # browser tests, through Playwright's executablePath
  [curl]="curl"                      # the commands `npm start` prints
  [promtool]="promtool"              # checks our /metrics output
  [tmux]="tmux"                      # the interactive shell's tests in a real terminal
  [sqlite3]="sqlite3"                # opens backups and makes files to import
  [openssl]="openssl"                # checks the certificates `dqlite-wasm cert` makes
)
declare -A packages=(
  [go-dqlite]=go-dqlite [chromium]=chromium [curl]=curl [promtool]=prometheus [tmux]=tmux [sqlite3]=sqlite3 [openssl]=openssl
)

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(go-dqlite chromium curl promtool tmux sqlite3 openssl)

missing=()
for what in "${wanted[@]}"; do
  if [ -z "${commands[$what]+set}" ]; then
    echo "ensure-deps: unknown dependency '$what' (known: ${!commands[*]})" >&2
    exit 2
  fi
  for command in ${commands[$what]}; do
    if ! command -v "$command" >/dev/null 2>&1; then
      missing+=("${packages[$what]}")
      break
    fi
  done
done
[ ${#missing[@]} -gt 0 ] || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: missing ${missing[*]} and no apt-get here; install the Debian packages ${missing[*]} by other means" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "ensure-deps: installing ${missing[*]} from Debian (once per machine)..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
echo "ensure-deps: installed ${missing[*]}"
