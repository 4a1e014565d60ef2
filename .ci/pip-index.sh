#!/usr/bin/env bash
# Serve this machine's local Python package index on 127.0.0.1, so `pip install --index-url`
# inside a docker build with host networking can install packages (numpy, pandas, ...) with no
# internet. Idempotent: a server we already started and that still answers is reused.
#
# The machine's pip config points at three file:// sources:
#   /opt/pypi/simple, /opt/pypi-more/simple  PEP 503 "simple" indexes whose project pages link
#                                            to wheels with relative hrefs (../../files/X.whl#sha256=...)
#   /opt/wheels                              a flat find-links directory (e.g. torch)
# Some projects (numpy, matplotlib, ...) appear in both indexes with different versions. We
# serve all three unchanged under /pypi, /pypi-more and /wheels, and also generate ONE merged
# simple index under /simple whose links point into those trees, so a single --index-url sees
# every version and no --extra-index-url / --find-links is needed.
#
# Usage: pip-index.sh            start (or reuse) the server, print the URLs
#        pip-index.sh --stop     stop the server this script started (only that one)
#
# Env (all optional):
#   RGRID_PIP_INDEX_PORT     port on 127.0.0.1                 (default 3141)
#   RGRID_PIP_INDEX_PIDFILE  pid file                          (default /tmp/rgrid-pip-index.pid)
#   RGRID_PIP_INDEX_ROOT     generated root that is served     (default /tmp/rgrid-pip-index)
#   RGRID_PIP_INDEX_LOG      server log                        (default /tmp/rgrid-pip-index.log)
# Output: the merged index URL is also written to $RGRID_PIP_INDEX_ROOT.url
set -euo pipefail

PORT="${RGRID_PIP_INDEX_PORT:-3141}"
PIDFILE="${RGRID_PIP_INDEX_PIDFILE:-/tmp/rgrid-pip-index.pid}"
ROOT="${RGRID_PIP_INDEX_ROOT:-/tmp/rgrid-pip-index}"
LOG="${RGRID_PIP_INDEX_LOG:-/tmp/rgrid-pip-index.log}"
BASE="http://127.0.0.1:$PORT"
SOURCES=(/opt/pypi /opt/pypi-more)   # each has simple/ and files/
WHEELS=/opt/wheels

ours_running() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "http.server $PORT"
}
answers() { python3 - "$BASE/simple/" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read(1)
PY
}

if [[ "${1:-}" == --stop ]]; then
  if ours_running; then
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    echo "pip-index: stopped server $pid"
  else
    echo "pip-index: no server of ours running"
  fi
  rm -f "$PIDFILE"
  exit 0
fi

print_urls() {
  echo "pip-index: serving on $BASE (pid file $PIDFILE)"
  echo "RGRID_PIP_INDEX_URL=$BASE/simple/"
  echo "# the original indexes, unmerged:"
  echo "#   $BASE/pypi/simple/  $BASE/pypi-more/simple/  find-links $BASE/wheels/"
}

if ours_running && answers; then print_urls; exit 0; fi
rm -f "$PIDFILE"

# --- generate the served tree (cheap: ~900 small HTML files) ---
rm -rf "$ROOT.tmp"
mkdir -p "$ROOT.tmp"
python3 - "$ROOT.tmp" "$WHEELS" "${SOURCES[@]}" <<'PY'
import html, os, re, sys
from urllib.parse import urljoin

root, wheels, sources = sys.argv[1], sys.argv[2], sys.argv[3:]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # PEP 503 project name normalization
anchor = re.compile(r'<a\s([^>]*?)href="([^"]+)"([^>]*)>([^<]*)</a>', re.I)

projects = {}  # normalized name -> {filename: anchor html}
def add(project, filename, tag):
    projects.setdefault(norm(project), {}).setdefault(filename, tag)

for src in sources:
    name = os.path.basename(src.rstrip("/"))
    os.symlink(src, os.path.join(root, name))
    simple = os.path.join(src, "simple")
    for proj in sorted(os.listdir(simple)):
        page = os.path.join(simple, proj, "index.html")
        if not os.path.isfile(page):
            continue
        base = f"/{name}/simple/{proj}/"
        with open(page, encoding="utf-8") as f:
            for pre, href, post, text in anchor.findall(f.read()):
                url = urljoin(base, href)  # ../../files/x.whl -> /pypi/files/x.whl (keeps #sha256)
                filename = url.split("#")[0].rsplit("/", 1)[-1]
                add(proj, filename, f'<a {pre}href="{html.escape(url)}"{post}>{text}</a>')

if os.path.isdir(wheels):
    os.symlink(wheels, os.path.join(root, "wheels"))
    for fn in sorted(os.listdir(wheels)):
        if fn.endswith((".whl", ".tar.gz", ".zip")):
            add(fn.split("-")[0], fn, f'<a href="/wheels/{html.escape(fn)}">{html.escape(fn)}</a>')

head = "<!DOCTYPE html><html><body>\n"
os.makedirs(os.path.join(root, "simple"))
with open(os.path.join(root, "simple", "index.html"), "w") as f:
    f.write(head + "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects)) + "</body></html>\n")
for p, files in projects.items():
    os.makedirs(os.path.join(root, "simple", p))
    with open(os.path.join(root, "simple", p, "index.html"), "w") as f:
        f.write(head + "\n".join(files.values()) + "\n</body></html>\n")
print(f"pip-index: merged index of {len(projects)} projects")
PY
rm -rf "$ROOT"
mv "$ROOT.tmp" "$ROOT"
echo "$BASE/simple/" > "$ROOT.url"

if answers; then
  echo "pip-index: something else already answers on $BASE; stop it or set RGRID_PIP_INDEX_PORT" >&2
  exit 1
fi

# setsid: the server outlives this shell and can be stopped by pid alone. Bound to 127.0.0.1
# only; docker builds reach it through host networking.
setsid python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$ROOT" \
  >>"$LOG" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
for _ in $(seq 1 40); do
  if answers; then print_urls; exit 0; fi
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
  sleep 0.25
done
echo "pip-index: server did not come up on $BASE; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
