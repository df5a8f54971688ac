#!/usr/bin/env bash
# The integration, reliability and browser suites create their databases in the machine's PostgreSQL
# (127.0.0.1:5432, trust auth). Starts the local cluster when it is installed but down.
set -euo pipefail
pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && exit 0; sleep 1; done
fi
echo "the integration tests need PostgreSQL on 127.0.0.1:5432 (trust auth); start it with:" >&2
echo "  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
exit 1
