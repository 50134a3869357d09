#!/bin/bash
# Runs a Python test script with Debian's python3 (which sees python3-redis;
# the python3 on PATH may be a pyenv shim that does not).
set -euo pipefail
if [[ ! -x /usr/bin/python3 ]]; then
  echo "error: /usr/bin/python3 missing: run tools/setup.sh" >&2
  exit 1
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$@"
