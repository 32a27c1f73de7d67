#!/usr/bin/env bash
# Installs what the tests and benchmarks need from Debian when this machine lacks it.
# Usage: scripts/ensure-deps.sh [go-dqlite] [chromium] [curl] [sqlite3]   (no arguments: everything)
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(go-dqlite chromium curl sqlite3)

missing=()
for what in "${wanted[@]}"; do
  case "$what" in
    go-dqlite) command -v dqlite-demo >/dev/null 2>&1 && command -v dqlite >/dev/null 2>&1 || missing+=(go-dqlite) ;;
    chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    curl) command -v curl >/dev/null 2>&1 || missing+=(curl) ;;
    sqlite3) command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3) ;;
    *) echo "ensure-deps: unknown dependency '$what' (known: go-dqlite chromium curl sqlite3)" >&2; exit 2 ;;
  esac
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
