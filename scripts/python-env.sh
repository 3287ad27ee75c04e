#!/usr/bin/env bash
# Makes (once) a Python venv with pyzmq (for the interop peer Tests/IntegrationTests/Python/mdp_peer.py)
# and mcp-server-time (the real MCP server of the tool gateway's tests, `$venv/bin/mcp-server-time`),
# and prints the venv's python path as the last line of stdout. Safe to run repeatedly.
# Venv location: $SWITCHBOARD_VENV, default ~/.cache/switchboard/venv.
set -euo pipefail
venv=${SWITCHBOARD_VENV:-"$HOME/.cache/switchboard/venv"}
py="$venv/bin/python"

# Debian/Ubuntu ship venv/ensurepip separately (python3-venv); install it when it is missing.
install_venv_package() {
  echo "python-env: python3 -m venv failed; installing python3-venv with apt-get" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "python-env: not root and no sudo; install python3-venv" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y python3-venv >&2
}

if [ ! -x "$py" ]; then
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >&2; then
    rm -rf "$venv"  # a half-made venv (no pip) would otherwise look usable next time
    install_venv_package
    python3 -m venv "$venv" >&2
  fi
fi

if ! "$py" -c 'import zmq' 2>/dev/null; then
  "$py" -m pip install --disable-pip-version-check --quiet pyzmq >&2
  "$py" -c 'import zmq' >&2  # fail loudly here, not later in a test
fi

if [ ! -x "$venv/bin/mcp-server-time" ]; then
  "$py" -m pip install --disable-pip-version-check --quiet mcp-server-time >&2
  [ -x "$venv/bin/mcp-server-time" ] || { echo "python-env: mcp-server-time did not install" >&2; exit 1; }
fi

echo "$py"
