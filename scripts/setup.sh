#!/usr/bin/env bash
# Installs what Switchboard needs to build and test on Debian/Ubuntu. Safe to run again.
set -euo pipefail

packages=(liblmdb-dev lmdb-utils libzmq3-dev libcurl4-openssl-dev libssl-dev libjemalloc-dev pkg-config python3 python3-venv curl
          cmake g++)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: a Swift 6.1+ toolchain is required (https://www.swift.org/install/linux/)" >&2
    exit 1
fi
echo "setup: ok ($(swift --version 2>/dev/null | head -1))"
