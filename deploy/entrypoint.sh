#!/bin/sh
# Runs one Backplane service by name, or the backplane CLI, or the container health check.
set -e
service="${1:-name-server}"
shift || true
# as many open files as the container may have (the ds coordinator holds two sockets per relayed client):
# the soft limit up to the hard one, which never fails, whatever limit the host gives
ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
case "$service" in
  backplane) exec node /app/dist/bin.js "$@" ;;
  healthcheck) exec node /app/deploy/healthcheck.js "$@" ;;
esac
main="/app/node_modules/@backplane/$service/dist/main.js"
if [ ! -f "$main" ]; then
  echo "unknown service '$service'; known: name-server ibp-depot tuplespace sharing ds-coordinator (or backplane, healthcheck)" >&2
  exit 2
fi
# the relay's malloc setting (RELAY_MALLOC_ENV in packages/runtime/src/main.ts): read at process start
if [ "$service" = ds-coordinator ]; then
  export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-268435456}"
fi
exec node "$main" "$@"
