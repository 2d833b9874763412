#!/usr/bin/env bash
# Installs the third-party MCP clients that tests/e2e/*_clients_test.ts drive, at pinned versions, from
# their registries: the Python ones from PyPI into one venv per SDK line under .cache/clients-venv (the 1.x
# and 2.x SDKs cannot share one), the AI SDK's from npm into .cache/clients-node.
# Skips whatever is already installed at the pinned versions; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
for name in sdk1 sdk2; do
  requirements="tests/clients/requirements-$name.txt"
  venv=".cache/clients-venv/$name"
  if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/installed.txt"; then continue; fi
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/installed.txt"
done

npm_packages="@ai-sdk/mcp@2.0.99 zod@4.6.7"
node_dir=.cache/clients-node
if [ "$(cat "$node_dir/installed.txt" 2>/dev/null)" != "$npm_packages" ]; then
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  echo '{ "private": true }' >"$node_dir/package.json"
  # shellcheck disable=SC2086 # one word per package
  npm install --prefix "$node_dir" --save-exact --no-audit --no-fund --loglevel=error $npm_packages
  echo "$npm_packages" >"$node_dir/installed.txt"
fi
