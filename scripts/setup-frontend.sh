#!/usr/bin/env bash
# Install the front-end libraries (marked, DOMPurify, highlight.js, Chart.js; axe-core for the tests) from the npm registry,
# exactly as package-lock.json pins them, only when the lockfile changed. Node.js and npm come from
# Debian when the machine has none. Django serves them from node_modules/ (settings.STATICFILES_DIRS).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  echo "Installing Debian's Node.js and npm for the chat page's front-end libraries..."
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
stamp="node_modules/.installed-package-lock"
digest="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$digest" > "$stamp"
fi
