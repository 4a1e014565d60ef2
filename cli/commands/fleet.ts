/**
 * `rgrid fleet status|user-data|configure|reconcile`: the operator's view of the autoscaled
 * fleet. `user-data` renders locally (no control plane needed); the others call /admin/v1/fleet
 * with the admin secret (--admin-secret or RGRID_ADMIN_SECRET).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { FleetPoolConfig, FleetStatusResponse, PutFleetPoolResponse, ReconcileResponse, type FleetPoolStatus } from '../../shared/fleet/api.js';
import { PLACEHOLDER_TOKEN, renderUserData } from '../../shared/fleet/user-data.js';
import { RUNTIMES } from '../../shared/limits.js';
import { Http } from '../api/http.js';
import { IDEMPOTENT, NOT_IDEMPOTENT, withRetry } from '../api/retry.js';
import { resolveConfig } from '../config.js';
import { CLI_EXIT, CliError, usageError } from '../errors.js';
import { bold, dim, formatDuration, green, red, yellow } from '../ui.js';
import { VERSION } from '../version.js';
import { JSON_FLAG, bool, list, str, type CommandSpec, type Parsed } from './_args.js';
import { command, printJson } from './_shared.js';

const ACTIONS = ['status', 'user-data', 'configure', 'reconcile'] as const;

export const spec: CommandSpec = {
  name: 'fleet',
  description: 'Autoscaled runner servers: status, cloud-init user-data, pool config, checks',
  positionals: [{ name: 'ACTION', description: `One of: ${ACTIONS.join(', ')}`, required: true }],
  flags: {
    pool: { type: 'string', valueHint: 'name', description: 'Runner pool (user-data and configure need it; status and reconcile default to all pools)' },
    config: { type: 'string', valueHint: 'file', description: 'configure: the pool\'s autoscaling config as JSON (a file, or - for stdin)' },
    slots: { type: 'string', valueHint: 'n', description: 'user-data: job slots of the runner (default 2)' },
    token: { type: 'string', valueHint: 'token', description: 'user-data: registration token to embed (default: a placeholder)' },
    'runner-package': { type: 'string', valueHint: 'spec', description: `user-data: npm install spec of the runner (default rgrid@${VERSION})` },
    'pip-index-url': { type: 'string', valueHint: 'url', description: 'user-data: package index for environment builds' },
    image: { type: 'string', multiple: true, valueHint: 'image', description: `user-data: base image to pre-pull (default ${RUNTIMES['python3.11'].image})` },
    'admin-secret': { type: 'string', valueHint: 'secret', description: 'The control plane\'s ADMIN_SECRET (overrides RGRID_ADMIN_SECRET)' },
    'api-url': { type: 'string', valueHint: 'url', description: 'Control plane URL (overrides RGRID_API_URL and the config file)' },
    ...JSON_FLAG,
  },
  examples: [
    'rgrid fleet user-data --pool default > user-data.yaml',
    'rgrid fleet configure --pool default --config fleet.json',
    'rgrid fleet status',
    'rgrid fleet reconcile --pool default',
  ],
};

async function adminHttp(args: Parsed): Promise<Http> {
  const config = await resolveConfig({ apiUrl: str(args, 'api-url') });
  const secret = str(args, 'admin-secret') ?? process.env.RGRID_ADMIN_SECRET;
  if (!secret) {
    throw new CliError('No admin secret given', { hint: 'Pass --admin-secret or set RGRID_ADMIN_SECRET to the control plane\'s ADMIN_SECRET.', exitCode: CLI_EXIT.auth });
  }
  return new Http({ baseUrl: config.apiUrl, token: secret, userAgent: `rgrid-cli/${VERSION}` });
}

const ago = (iso: string | null, now: number) => (iso ? `${formatDuration(Math.max(0, now - Date.parse(iso)))} ago` : '-');

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [dim(line(header)), ...rows.map(line)];
}

const colorOutcome = (o: string) => (o === 'ok' ? green(o) : o === 'failed' ? red(o) : yellow(o));

/** The status of one pool as text (also used by tests). */
export function formatPool(p: FleetPoolStatus, now = Date.now()): string {
  const c = p.config;
  const lines: string[] = [];
  const policy = c
    ? `${c.enabled ? 'autoscaling on' : 'autoscaling off'}: ${c.minServers}-${c.maxServers} × ${c.serverType} in ${c.location}, ${c.slotsPerServer} slots each, scale down ${c.scaleDown === 'idle' ? `after ${c.idleTimeoutSeconds}s idle` : `at the end of a paid hour after ${c.idleTimeoutSeconds}s idle`}`
    : 'no autoscaling config';
  lines.push(`${bold(`Pool ${p.pool}`)}  ${dim(policy)}`);
  lines.push(`  queue    ${p.queue.ready} waiting, ${p.queue.leased} running`);
  lines.push(`  slots    ${p.slots.total} total, ${p.slots.busy} busy, ${p.slots.free} free`);
  const servers = p.servers.filter((s) => s.status !== 'deleted' && s.status !== 'failed');
  lines.push(`  servers  ${servers.length}${p.servers.length > servers.length ? dim(` (+${p.servers.length - servers.length} deleted or failed in the last hour)`) : ''}`);
  if (p.servers.length) {
    const rows = p.servers.map((s) => [s.name, s.status, s.providerId ?? '-', s.runnerId ?? '-', ago(s.createdAt, now), s.idleSince ? ago(s.idleSince, now) : '-']);
    lines.push(...table(['NAME', 'STATUS', 'HETZNER ID', 'RUNNER', 'CREATED', 'IDLE SINCE'], rows).map((l) => `    ${l}`));
  }
  lines.push(`  runners  ${p.runners.length}`);
  if (p.runners.length) {
    const rows = p.runners.map((r) => [r.id, r.name, r.serverId ?? '-', `${r.activeJobs}/${r.slots}`, r.draining ? 'draining' : r.drainRequested ? 'drain asked' : 'serving', ago(r.lastSeenAt, now)]);
    lines.push(...table(['ID', 'NAME', 'SERVER', 'JOBS', 'STATE', 'LAST SEEN'], rows).map((l) => `    ${l}`));
  }
  lines.push(`  latest decisions`);
  if (!p.decisions.length) lines.push(dim('    none yet'));
  for (const d of p.decisions) {
    lines.push(`    ${d.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}  ${d.action.padEnd(6)}  ${colorOutcome(d.outcome).padEnd(7)}  ${d.reason}${d.error ? `\n${' '.repeat(40)}${red(d.error)}` : ''}`);
  }
  return lines.join('\n');
}

async function status(args: Parsed): Promise<void> {
  const http = await adminHttp(args);
  const pool = str(args, 'pool');
  const res = await withRetry(IDEMPOTENT, () => http.request('GET', '/admin/v1/fleet/status', { query: { pool }, schema: FleetStatusResponse }));
  if (bool(args, 'json')) return printJson(res);
  if (!res.pools.length) {
    process.stdout.write('No pool has an autoscaling config yet. Set one with `rgrid fleet configure --pool NAME --config FILE`.\n');
    return;
  }
  process.stdout.write(res.pools.map((p) => formatPool(p)).join('\n\n') + '\n');
}

function userData(args: Parsed): Promise<void> {
  const pool = str(args, 'pool');
  if (!pool) throw usageError('Missing --pool', 'Usage: rgrid fleet user-data --pool NAME');
  return resolveConfig({ apiUrl: str(args, 'api-url') }).then((config) => {
    const slotsRaw = str(args, 'slots') ?? '2';
    const slots = Number(slotsRaw);
    if (!Number.isInteger(slots) || slots < 1 || slots > 256) throw usageError(`Invalid --slots "${slotsRaw}"`, 'Give a whole number from 1 to 256.');
    const pip = str(args, 'pip-index-url');
    const images = list(args, 'image');
    try {
      process.stdout.write(
        renderUserData({
          apiUrl: config.apiUrl,
          registrationToken: str(args, 'token') ?? PLACEHOLDER_TOKEN,
          pool,
          slots,
          runnerPackage: str(args, 'runner-package') ?? `rgrid@${VERSION}`,
          runnerEnv: pip ? { RGRID_RUNNER_PIP_INDEX_URL: pip } : {},
          prePullImages: images.length ? images : [RUNTIMES['python3.11'].image],
        }),
      );
    } catch (err) {
      throw usageError(`Cannot render the user-data: ${(err as Error).message}`);
    }
  });
}

async function configure(args: Parsed): Promise<void> {
  const pool = str(args, 'pool');
  const file = str(args, 'config');
  if (!pool || !file) throw usageError('configure needs --pool and --config', 'Usage: rgrid fleet configure --pool NAME --config fleet.json (see docs/deploy.md)');
  let raw: unknown;
  try {
    raw = JSON.parse(file === '-' ? await readStdin() : await readFile(file, 'utf8'));
  } catch (err) {
    throw usageError(`Cannot read ${file}: ${(err as Error).message}`, 'Give a JSON file with the pool\'s autoscaling settings.');
  }
  const parsed = FleetPoolConfig.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw usageError(`Invalid config in ${file}: ${i?.path.join('.') || 'config'}: ${i?.message}`, 'docs/deploy.md lists every field.');
  }
  const http = await adminHttp(args);
  const res = await withRetry(IDEMPOTENT, () => http.request('POST', `/admin/v1/fleet/pools/${encodeURIComponent(pool)}`, { body: raw, schema: PutFleetPoolResponse }));
  if (bool(args, 'json')) return printJson(res);
  process.stdout.write(`${green('✓')} pool ${res.pool}: ${res.config.enabled ? 'autoscaling on' : 'autoscaling off'}, ${res.config.minServers}-${res.config.maxServers} servers\n`);
}

async function reconcile(args: Parsed): Promise<void> {
  const http = await adminHttp(args);
  const pool = str(args, 'pool');
  const res = await withRetry(NOT_IDEMPOTENT, () => http.request('POST', '/admin/v1/fleet/reconcile', { body: pool ? { pool } : {}, schema: ReconcileResponse }));
  if (bool(args, 'json')) return printJson(res);
  for (const r of res.results) {
    if (r.skipped) process.stdout.write(`${r.pool}: ${dim(`skipped: ${r.skipped}`)}\n`);
    else if (!r.decisions.length) process.stdout.write(`${r.pool}: nothing to do\n`);
    for (const d of r.decisions) process.stdout.write(`${r.pool}: ${d.action} ${colorOutcome(d.outcome)}: ${d.reason}${d.error ? ` (${d.error})` : ''}\n`);
  }
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => (text += d));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

export default command(spec, async (args) => {
  const action = z.enum(ACTIONS).safeParse(args.positionals[0]);
  if (!action.success) throw usageError(`Unknown fleet action "${args.positionals[0] ?? ''}"`, `Use one of: ${ACTIONS.join(', ')}.`);
  switch (action.data) {
    case 'status':
      return status(args);
    case 'user-data':
      return userData(args);
    case 'configure':
      return configure(args);
    case 'reconcile':
      return reconcile(args);
  }
});
