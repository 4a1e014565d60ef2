/**
 * cloud-init user-data that turns a fresh Debian/Ubuntu server into an RGrid runner. Pure
 * string building (no Node or Worker APIs): the control plane renders it for every server it
 * creates, and `rgrid fleet user-data` prints it for manual installs.
 *
 * What the server does on first boot, in cloud-init's own order:
 *   1. write_files (init stage): /etc/rgrid-runner.env (mode 0600: it holds the one-time
 *      registration token), the systemd unit, and the install script;
 *   2. packages (config stage): Docker (Debian's docker.io), curl, xz;
 *   3. runcmd (final stage): the install script — Node.js at a pinned version from nodejs.org
 *      (checked against its SHASUMS256), the runner from npm at a pinned version, the base
 *      images pulled, then `systemctl enable --now rgrid-runner`. The runner starts last, so by
 *      the time it registers (which is what the autoscaler waits for) it can run jobs.
 */
import { EnvValue } from './api.js';

export const RUNNER_ENV_PATH = '/etc/rgrid-runner.env';
export const RUNNER_UNIT_PATH = '/etc/systemd/system/rgrid-runner.service';
export const INSTALL_SCRIPT_PATH = '/usr/local/sbin/rgrid-install-runner';
/** Node.js release installed on servers (the runner needs Node 20). */
export const DEFAULT_NODE_VERSION = '20.19.5';
/** What `rgrid fleet user-data` puts where a real one-time token goes. */
export const PLACEHOLDER_TOKEN = 'rgrid_reg_REPLACE_WITH_A_REGISTRATION_TOKEN';

export interface UserDataOptions {
  /** Control plane URL the runner calls (public HTTPS URL in production). */
  apiUrl: string;
  /** One-time registration token for this server. */
  registrationToken: string;
  pool: string;
  slots: number;
  /** RGrid server id; becomes the runner label rgrid.server=<id>. */
  serverId?: string;
  /** Runner name shown to operators; the server name for fleet servers. */
  name?: string;
  /** npm install spec of the runner, pinned: `rgrid@0.1.0` or a tarball URL. */
  runnerPackage: string;
  nodeVersion?: string;
  /** Extra RGRID_RUNNER_* settings (pip index, claim wait, image overrides…). */
  runnerEnv?: Record<string, string>;
  /** Images pulled before the runner starts. */
  prePullImages?: string[];
}

/** The runner's environment file, KEY="value" per line (systemd EnvironmentFile syntax). */
export function runnerEnvironment(o: UserDataOptions): Record<string, string> {
  const env: Record<string, string> = {
    RGRID_RUNNER_API_URL: o.apiUrl,
    RGRID_RUNNER_REGISTRATION_TOKEN: o.registrationToken,
    RGRID_RUNNER_POOL: o.pool,
    RGRID_RUNNER_SLOTS: String(o.slots),
    ...(o.name ? { RGRID_RUNNER_NAME: o.name } : {}),
    ...(o.serverId ? { RGRID_RUNNER_LABELS: `rgrid.server=${o.serverId}` } : {}),
    RGRID_RUNNER_WORK_DIR: '/var/lib/rgrid-runner',
    // A server has a registry to pull from; a missing base image is pulled rather than failed.
    RGRID_RUNNER_PULL_IMAGES: 'true',
    ...o.runnerEnv,
  };
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`invalid environment variable name ${k}`);
    const ok = EnvValue.safeParse(v);
    if (!ok.success) throw new Error(`${k}: ${ok.error.issues[0]?.message ?? 'invalid value'}`);
  }
  return env;
}

export function formatEnvFile(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}="${v}"`)
    .join('\n');
}

/** Reads KEY=value / KEY="value" lines (comments and blank lines skipped), as systemd does for our files. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    env[line.slice(0, eq).trim()] = value;
  }
  return env;
}

export function systemdUnit(): string {
  return `[Unit]
Description=RGrid runner (pulls jobs from the control plane and runs them in Docker)
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service

[Service]
EnvironmentFile=${RUNNER_ENV_PATH}
ExecStart=/usr/local/bin/rgrid-runner
# Restart after crashes and reboots. A runner that finished a drain exits 0: that is final (the
# autoscaler deletes the server next), so exit 0 is not restarted; every other exit is.
Restart=always
RestartSec=5
RestartPreventExitStatus=0
# SIGTERM drains (running jobs finish); give them time before systemd kills the runner.
KillSignal=SIGTERM
TimeoutStopSec=3600

[Install]
WantedBy=multi-user.target
`;
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function installScript(o: UserDataOptions): string {
  const node = o.nodeVersion ?? DEFAULT_NODE_VERSION;
  if (!/^\d+\.\d+\.\d+$/.test(node)) throw new Error(`invalid Node.js version ${node}`);
  const images = o.prePullImages ?? [];
  return `#!/bin/sh
# Installs Node.js ${node}, the RGrid runner (${o.runnerPackage}) and the base images, then
# starts the runner. Run once by cloud-init; safe to run again.
set -eu
log() { echo "[rgrid-install] $*"; }

systemctl enable --now docker

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node')" != ${sh(node)} ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) log "unsupported architecture $(uname -m)"; exit 1 ;;
  esac
  tarball="node-v${node}-linux-$arch.tar.xz"
  cd /tmp
  curl -fsSLO "https://nodejs.org/dist/v${node}/$tarball"
  curl -fsSL "https://nodejs.org/dist/v${node}/SHASUMS256.txt" | grep " $tarball\\$" | sha256sum -c -
  tar -xJf "$tarball" -C /usr/local --strip-components=1 --no-same-owner
  rm -f "$tarball"
fi
log "node $(node --version)"

npm install --global --no-audit --no-fund ${sh(o.runnerPackage)}

${images.map((i) => `docker pull ${sh(i)} || log ${sh(`could not pull ${i} (jobs will pull it when they need it)`)}`).join('\n')}

systemctl daemon-reload
systemctl enable --now rgrid-runner.service
log "rgrid-runner started"
`;
}

/** Indents a block for a YAML literal scalar (`|`) under a list item's key. */
function block(text: string, indent: string): string {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => (l ? indent + l : ''))
    .join('\n');
}

/** JSON strings are valid YAML double-quoted scalars. */
const q = (s: string) => JSON.stringify(s);

export function renderUserData(o: UserDataOptions): string {
  if (!Number.isInteger(o.slots) || o.slots < 1) throw new Error('slots must be a positive integer');
  const env = formatEnvFile(runnerEnvironment(o));
  const ind = '      ';
  return `#cloud-config
# RGrid runner for pool ${q(o.pool)}${o.serverId ? `, server ${o.serverId}` : ''}.
# Installs Docker and Node.js, the runner (${o.runnerPackage}) under systemd, and pre-pulls images.
package_update: true
packages:
  - docker.io
  - ca-certificates
  - curl
  - xz-utils
write_files:
  - path: ${q(RUNNER_ENV_PATH)}
    owner: "root:root"
    permissions: "0600"
    content: |
${block(env, ind)}
  - path: ${q(RUNNER_UNIT_PATH)}
    owner: "root:root"
    permissions: "0644"
    content: |
${block(systemdUnit(), ind)}
  - path: ${q(INSTALL_SCRIPT_PATH)}
    owner: "root:root"
    permissions: "0755"
    content: |
${block(installScript(o), ind)}
runcmd:
  - [${q(INSTALL_SCRIPT_PATH)}]
`;
}
