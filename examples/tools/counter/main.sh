#!/usr/bin/env bash
# A persistent counter. Arguments arrive as JSON on stdin and as ARG_BY / ARG_RESET.
set -euo pipefail

by="${ARG_BY:-1}"
if ! [[ "$by" =~ ^-?[0-9]+$ ]]; then
  echo "by must be an integer, got '$by'" >&2
  exit 2
fi
file="$TOOLFORGE_STATE_DIR/count"
count=0
if [[ "${ARG_RESET:-false}" != "true" && -f "$file" ]]; then
  count=$(cat "$file")
fi
count=$((count + by))
if (( count < 0 )); then
  echo "the counter cannot go below zero (it is $((count - by)))" >&2
  exit 1
fi
echo "$count" > "$file.tmp"
mv "$file.tmp" "$file"
printf '{"count": %d}\n' "$count"
