#!/usr/bin/env bash
# One-time setup for the benchmarks (not part of CI): GNU parallel for the throughput comparison,
# and checks for what every bench needs. Safe to run again.
#   bash bench/setup.sh
set -euo pipefail

if ! command -v parallel >/dev/null 2>&1; then
  echo "bench setup: installing GNU parallel"
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y parallel; else sudo apt-get install -y parallel; fi
fi
# GNU parallel asks once for a citation notice; the benches pass --will-cite, this silences it elsewhere.
mkdir -p "$HOME/.parallel" && touch "$HOME/.parallel/will-cite"
echo "bench setup: $(parallel --version | head -1)"

if ! docker info >/dev/null 2>&1; then
  echo "bench setup: Docker is not reachable; start it (on the CI machines: bash .ci/docker-up.sh)" >&2
  exit 1
fi
if ! docker image inspect python:3.11-slim >/dev/null 2>&1; then
  echo "bench setup: python:3.11-slim is missing; build it with bash .ci/base-images.sh" >&2
  exit 1
fi
echo "bench setup: Docker $(docker version --format '{{.Server.Version}}'), python:3.11-slim present"

command -v python3 >/dev/null 2>&1 || { echo "bench setup: python3 is missing on the host" >&2; exit 1; }
echo "bench setup: host $(python3 --version)"

index="${RGRID_PIP_INDEX_URL:-http://127.0.0.1:3141/simple/}"
if curl -fsS -o /dev/null --max-time 3 "$index"; then
  echo "bench setup: pip index $index reachable"
else
  echo "bench setup: warning: pip index $index not reachable (only environment builds need it; start it with bash .ci/pip-index.sh)"
fi
