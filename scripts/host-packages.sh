#!/usr/bin/env bash
# Host packages toolforge uses besides Docker: debootstrap (offline base images),
# esbuild (TypeScript checks and the local backend), bubblewrap (local backend).
# Installed from Debian's packages when missing and we are root; otherwise say what is missing.
set -euo pipefail

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v esbuild >/dev/null 2>&1 || missing+=(esbuild)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "host packages: debootstrap, esbuild, bubblewrap present"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "host packages: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "host packages: installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
