#!/usr/bin/env bash
# Make a Docker daemon reachable on unix:///var/run/docker.sock, idempotently.
#
# - If `docker info` already works, do nothing (a daemon someone else started is left alone and
#   is NOT recorded in our pid file, so docker-down.sh will not stop it).
# - Otherwise install Debian's docker.io when dockerd is missing (/usr/local/bin/docker on this
#   machine is only a client), start dockerd in its own session, and wait for it.
#
# dockerd runs with --bridge=none --iptables=false: job containers get no network at all and the
# host's firewall is never touched. Image builds that need packages use host networking against
# an index served on 127.0.0.1 (see pip-index.sh).
#
# Env (all optional):
#   RGRID_DOCKERD_PIDFILE  pid file of the dockerd we start   (default /tmp/rgrid-dockerd.pid)
#   RGRID_DOCKERD_LOG      dockerd's log                       (default /tmp/rgrid-dockerd.log)
#   RGRID_DOCKERD_WAIT     seconds to wait for `docker info`   (default 60)
set -euo pipefail

PIDFILE="${RGRID_DOCKERD_PIDFILE:-/tmp/rgrid-dockerd.pid}"
LOG="${RGRID_DOCKERD_LOG:-/tmp/rgrid-dockerd.log}"
WAIT="${RGRID_DOCKERD_WAIT:-60}"
SOCK=/var/run/docker.sock

docker_ok() { docker -H "unix://$SOCK" info >/dev/null 2>&1; }

if docker_ok; then
  echo "docker-up: daemon already reachable on $SOCK"
  if [[ -f "$PIDFILE" ]]; then echo "docker-up: pid file $PIDFILE"; fi
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: dockerd missing, installing Debian's docker.io"
  # The package's maintainer scripts would start the daemon through invoke-rc.d with Debian's
  # default bridge and iptables rules. A policy-rc.d that answers 101 ("action forbidden")
  # stops that; we start dockerd ourselves below with our own flags.
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends docker.io
  [[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
  trap - EXIT
  command -v dockerd >/dev/null 2>&1 || { echo "docker-up: docker.io installed but dockerd not on PATH" >&2; exit 1; }
fi

# A stale pid file from a dockerd that died: only trust it if the pid is still a dockerd.
if [[ -f "$PIDFILE" ]]; then
  oldpid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ -n "$oldpid" ]] && tr '\0' ' ' < "/proc/$oldpid/cmdline" 2>/dev/null | grep -q dockerd; then
    echo "docker-up: dockerd pid $oldpid (from $PIDFILE) is running but not answering; waiting for it"
  else
    rm -f "$PIDFILE"
    # dockerd refuses to start while its own pid file names a pid; a stale one is left by a kill -9.
    if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
      rm -f /var/run/docker.pid
    fi
  fi
fi

if [[ ! -f "$PIDFILE" ]]; then
  echo "docker-up: starting dockerd (log: $LOG)"
  # setsid: own session and process group, so the daemon survives the calling shell and
  # docker-down.sh can stop exactly this tree. stdin from /dev/null so CI without stdin is fine.
  setsid dockerd --host "unix://$SOCK" --bridge=none --iptables=false \
    >>"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
fi

pid="$(cat "$PIDFILE")"
for ((i = 0; i < WAIT * 2; i++)); do
  if docker_ok; then
    echo "docker-up: dockerd ready (pid $pid), pid file $PIDFILE"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "docker-up: dockerd (pid $pid) exited; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
    rm -f "$PIDFILE"
    exit 1
  fi
  sleep 0.5
done
echo "docker-up: dockerd (pid $pid) did not answer \`docker info\` within ${WAIT}s; last lines of $LOG:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
