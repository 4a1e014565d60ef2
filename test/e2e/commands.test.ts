// The CLI as a process against the local stack without runners: configuration, errors and exit
// codes, flag validation, --json, and list/status/cancel/logs/download on queued executions.
import { writeFile, stat, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RGridClient } from '../../cli/api/client.js';
import { prepareRun } from '../../cli/run/prepare.js';
import { uploadBlobs } from '../../cli/transfer/upload.js';
import { ListExecutionsResponse, ExecutionResponse } from '../../shared/api/executions.js';
import { runCli, show, spawnCli, workspace, type Workspace } from '../harness/cli.js';
import { startTestStack, type TestStack } from '../harness/stack.js';

let stack: TestStack;
let ws: Workspace;
let client: RGridClient;

/** Creates and submits an execution the way `rgrid run` does; with no runner it stays queued. */
async function queued(metadata: Record<string, string> = {}): Promise<string> {
  const prepared = await prepareRun({ script: 'wait.py', args: [], verbatimFrom: 0, env: {}, metadata, limits: {}, cwd: ws.cwd });
  const created = await client.create(prepared.body);
  await uploadBlobs(created.uploads, prepared.blobs);
  const { execution } = created.execution.status === 'created' ? await client.submit(created.execution.id) : created;
  expect(execution.status).toBe('queued');
  return execution.id;
}

async function count(): Promise<number> {
  return (await client.list({ limit: 200 })).executions.length;
}

beforeAll(async () => {
  stack = await startTestStack({ runners: 0 });
  ws = await workspace(stack);
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey });
  await writeFile(join(ws.cwd, 'wait.py'), 'import time\ntime.sleep(60)\n');
  await writeFile(join(ws.cwd, 'data.csv'), 'a,b\n1,2\n');
});

afterAll(async () => {
  await ws?.cleanup();
  await stack?.cleanup();
});

// Concurrent: independent of each other, and the unreachable case mostly waits out its retries.
describe.concurrent('configuration and credentials', () => {
  it('a wrong API key: exit 77, what went wrong and how to fix it, nothing created', async () => {
    const before = await count();
    const args = ['run', 'wait.py', 'data.csv', '--api-key', 'rgrid_sk_thisisnotavalidkeyatall000000000000'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(77);
    expect(r.stderr).toMatch(/^Error: The control plane refused the API key: invalid or revoked API key$/m);
    expect(r.stderr).toMatch(/rgrid login/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --verbose
    expect(await count()).toBe(before);
    const verbose = await runCli(['list', '--verbose', '--api-key', 'rgrid_sk_thisisnotavalidkeyatall000000000000'], ws);
    expect(verbose.code).toBe(77);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('no API key anywhere: exit 77 and the three ways to get one', async () => {
    const empty = await workspace();
    try {
      const r = await runCli(['list'], empty, { RGRID_API_URL: stack.apiUrl });
      expect(r.code, show(['list'], r)).toBe(77);
      expect(r.stderr).toMatch(/No API key configured/);
      expect(r.stderr).toMatch(/rgrid dev.*rgrid login.*RGRID_API_KEY/s);
    } finally {
      await empty.cleanup();
    }
  });

  it('login verifies the key, stores it 0600, and later commands use it; a bad key saves nothing', async () => {
    const fresh = await workspace();
    try {
      const bad = await runCli(['login', '--api-url', stack.apiUrl, '--api-key', 'rgrid_sk_wrongwrongwrongwrongwrongwrongwrong0'], fresh);
      expect(bad.code, show(['login'], bad)).toBe(77);
      await expect(stat(join(fresh.configDir, 'config.json'))).rejects.toThrow(/ENOENT/);

      const args = ['login', '--api-url', stack.apiUrl, '--api-key', stack.apiKey];
      const ok = await runCli(args, fresh);
      expect(ok.code, show(args, ok)).toBe(0);
      expect(ok.stderr).toMatch(/Logged in to http:\/\/127\.0\.0\.1:\d+ as local/);
      const path = join(fresh.configDir, 'config.json');
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ apiUrl: stack.apiUrl, apiKey: stack.apiKey });
      const list = await runCli(['list', '--json'], fresh);
      expect(list.code, show(['list'], list)).toBe(0);
    } finally {
      await fresh.cleanup();
    }
  });

  it('an unreachable control plane: retries announced on stderr, then exit 69', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const args = ['status', 'exec_aaaaaaaaaaaaaaaaaaaaaaaa', '--api-url', `http://127.0.0.1:${port}`];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(69);
    expect(r.stderr).toMatch(/^Retrying in [\d.]+s: control plane unreachable \(connection refused\)…$/m);
    expect(r.stderr).toMatch(/Error: Cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/);
    expect(r.stderr).toMatch(/rgrid dev/);
  }, 30_000);
});

// Concurrent: each case is a separate CLI process, and none of them may create anything.
describe.concurrent('nothing is sent when the command line is wrong (exit 2)', () => {
  // A representative set; every value rule is covered in cli/run/values.test.ts and
  // cli/commands/_args.test.ts without the cost of a process per case.
  const cases: [string[], RegExp][] = [
    [['run', 'wait.py', 'missing.csv'], /^Error: File not found: missing\.csv$/m],
    [['run', 'wait.py', 'data/missing.csv'], /^Error: File not found: data\/missing\.csv$/m],
    [['run', 'nope.py'], /^Error: File not found: nope\.py$/m],
    [['run', 'wait.py', '--timeout', 'soon'], /Invalid --timeout "soon"/],
    [['run', 'wait.py', '--cpus', '0'], /Invalid --cpus "0": must be between 0\.1 and 64/],
    [['run', 'wait.py', '--format', 'html'], /Unknown option --format for `rgrid run`/],
    [['list', '--status', 'sleeping'], /Invalid --status "sleeping"/],
    [['status', 'not-an-id'], /"not-an-id" is not an execution id/],
  ];
  it.for(cases)('rgrid %j', async ([args, message], { expect }) => {
    const before = await count();
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\u001b\[/); // NO_COLOR and not a TTY: no escape codes
    expect(await count()).toBe(before);
  });
});

describe('list, status, cancel, logs, download against queued executions', () => {
  let alpha: string;
  let beta: string;

  beforeAll(async () => {
    alpha = await queued({ project: 'alpha' });
    beta = await queued({ project: 'beta' });
  });

  it('list --json parses and matches the contract; filters by status and metadata', async () => {
    const r = await runCli(['list', '--json', '--metadata', 'project=alpha'], ws);
    expect(r.code, show(['list'], r)).toBe(0);
    const parsed = ListExecutionsResponse.parse(JSON.parse(r.stdout));
    expect(parsed.executions.map((e) => e.id)).toEqual([alpha]);
    const queuedOnly = ListExecutionsResponse.parse(JSON.parse((await runCli(['list', '--json', '--status', 'queued'], ws)).stdout));
    expect(queuedOnly.executions.map((e) => e.id)).toEqual(expect.arrayContaining([alpha, beta]));
  });

  it('list prints a table, newest first, and says when there are more', async () => {
    const r = await runCli(['list', '--limit', '1'], ws);
    expect(r.code, show(['list'], r)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+SCRIPT\s+CREATED\s+DURATION\s+EXIT$/);
    expect(lines[1]).toMatch(new RegExp(`^${beta}\\s+queued\\s+wait\\.py`));
    expect(r.stdout).toMatch(/Showing the newest 1; use --limit to see more/);
  });

  it('status shows the state and what to do next; --json parses', async () => {
    const r = await runCli(['status', alpha], ws);
    expect(r.code, show(['status'], r)).toBe(0);
    expect(r.stdout).toMatch(/status\s+queued/);
    expect(r.stdout).toMatch(/metadata\s+project=alpha/);
    expect(r.stdout).toMatch(new RegExp(`rgrid logs ${alpha} -f`));
    const j = ExecutionResponse.parse(JSON.parse((await runCli(['status', alpha, '--json'], ws)).stdout));
    expect(j.execution.id).toBe(alpha);
  });

  it('logs of a queued execution print nothing; download refuses until it finishes', async () => {
    const logs = await runCli(['logs', alpha], ws);
    expect(logs.code, show(['logs'], logs)).toBe(0);
    expect(logs.stdout).toBe('');
    const dl = await runCli(['download', alpha], ws);
    expect(dl.code, show(['download'], dl)).toBe(1);
    expect(dl.stderr).toMatch(new RegExp(`${alpha} is queued; its outputs are uploaded when it finishes`));
  });

  it('cancel: queued → canceled, repeatable; unknown ids are a clear error', async () => {
    const r = await runCli(['cancel', alpha], ws);
    expect(r.code, show(['cancel'], r)).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`Canceled ${alpha}`));
    const again = await runCli(['cancel', alpha, '--json'], ws);
    expect(again.code, show(['cancel'], again)).toBe(0);
    expect(ExecutionResponse.parse(JSON.parse(again.stdout)).execution.status).toBe('canceled');
    const status = await runCli(['status', alpha], ws);
    expect(status.stdout).toMatch(/status\s+canceled/);
    expect(status.stdout).toMatch(/Execution was canceled/);
    const unknown = await runCli(['cancel', 'exec_zzzzzzzzzzzzzzzzzzzzzzzz'], ws);
    expect(unknown.code, show(['cancel'], unknown)).toBe(1);
    expect(unknown.stderr).toMatch(/Execution exec_z+ not found/);
  });
});

describe('Ctrl+C during a run', () => {
  it('detaches without canceling: exit 130, says how to follow, the execution stays queued', async () => {
    const cli = spawnCli(['run', 'wait.py', 'data.csv'], ws);
    const [, id] = await cli.waitFor(/(exec_[a-z2-7]{24}) submitted/);
    cli.child.kill('SIGINT');
    const r = await cli.done;
    expect(r.code, show(['run'], r)).toBe(130);
    expect(r.stderr).toMatch(new RegExp(`Detached\\. ${id} keeps running`));
    expect(r.stderr).toMatch(new RegExp(`rgrid status ${id}`));
    expect(r.stderr).toMatch(new RegExp(`rgrid logs ${id} -f`));
    const { execution } = await client.get(id!);
    expect(execution.status).toBe('queued');
  });
});
