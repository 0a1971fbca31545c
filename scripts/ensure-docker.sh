#!/usr/bin/env bash
# Make sure a Docker engine answers. As root on a machine without one: install docker.io
# from Debian's packages and start dockerd in the background (log under $STATE_DIR).
set -euo pipefail

STATE_DIR="${TOOLFORGE_SYSTEM_STATE:-/var/lib/toolforge-system}"

if docker info >/dev/null 2>&1; then
  echo "docker: engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "docker: the engine is not running and this is not root; start dockerd yourself (or ask an admin)" >&2
  exit 3
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker: installing docker.io from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
mkdir -p "$STATE_DIR"
echo "docker: starting dockerd (log: $STATE_DIR/dockerd.log)"
nohup dockerd >"$STATE_DIR/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker: engine up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker: dockerd did not answer within 60 s; see $STATE_DIR/dockerd.log" >&2
tail -20 "$STATE_DIR/dockerd.log" >&2 || true
exit 3
