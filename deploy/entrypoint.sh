#!/bin/sh
# Runs one Backplane service by name (a folder under services/), or the backplane CLI.
set -e
service="${1:-name-server}"
shift || true
case "$service" in
  backplane) exec node /app/packages/cli/dist/bin.js "$@" ;;
  healthcheck) exec node /app/deploy/healthcheck.js "$@" ;;
esac
main="/app/services/$service/dist/main.js"
if [ ! -f "$main" ]; then
  echo "unknown service '$service'; known: $(ls /app/services | tr '\n' ' ')" >&2
  exit 2
fi
# the relay's malloc setting (RELAY_MALLOC_ENV in packages/runtime/src/main.ts): read at process start
if [ "$service" = ds-coordinator ]; then
  export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-268435456}"
fi
exec node "$main" "$@"
