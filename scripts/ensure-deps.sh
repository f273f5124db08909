#!/usr/bin/env bash
# Makes sure the system programs the test suite drives are present: nats-server (tests spawn
# real servers on free loopback ports), Chromium (browser tests of the inspector), and
# python3 with openssl (the journal verifier written in Python, tools/verify_journal.py).
# Installs them with apt-get when running as root; otherwise says exactly what to run.
set -euo pipefail

need=()
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then need+=(nats-server); fi
if [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
if ! command -v python3 >/dev/null 2>&1; then need+=(python3); fi
if ! command -v openssl >/dev/null 2>&1; then need+=(openssl); fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: installing ${need[*]} (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "ensure-deps: missing ${need[*]}. Install them, then re-run the tests:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
