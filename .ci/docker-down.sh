#!/usr/bin/env bash
# Stop the dockerd that docker-up.sh started (and only that one: the pid comes from our pid
# file and must still be a dockerd). A daemon started by anyone else is left running.
#
# Env: RGRID_DOCKERD_PIDFILE (default /tmp/rgrid-dockerd.pid), RGRID_DOCKERD_STOP_WAIT (s, default 30)
set -euo pipefail

PIDFILE="${RGRID_DOCKERD_PIDFILE:-/tmp/rgrid-dockerd.pid}"
WAIT="${RGRID_DOCKERD_STOP_WAIT:-30}"

if [[ ! -f "$PIDFILE" ]]; then
  echo "docker-down: no pid file $PIDFILE; nothing of ours to stop"
  exit 0
fi
pid="$(cat "$PIDFILE")"
if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q dockerd; then
  echo "docker-down: pid $pid is not a running dockerd; removing stale $PIDFILE"
  rm -f "$PIDFILE"
  exit 0
fi

# SIGTERM lets dockerd stop its containers and the containerd it spawned, in that order.
kill -TERM "$pid"
for ((i = 0; i < WAIT * 2; i++)); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
  echo "docker-down: dockerd $pid still running after ${WAIT}s, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
fi
# Anything left in the daemon's own process group (dockerd was a session leader via setsid,
# so the group id is its pid) belongs to this daemon and nothing else.
kill -TERM -- "-$pid" 2>/dev/null || true
rm -f "$PIDFILE"
echo "docker-down: stopped dockerd $pid"
