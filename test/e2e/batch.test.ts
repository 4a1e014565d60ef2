// Batches end to end: the CLI as a process against the local stack with two real runners
// (2 × 4 slots on Docker). Needs Docker, the base images and the runner agent; fails, never skips.
//
// Failures are scripted, deterministically: an input containing FAIL fails unless the file
// /etc/rgrid-e2e-fixed exists in the container; one containing ALWAYS fails in any case. The
// runners run python3.11 jobs on an image tag of this file's own (RGRID_RUNNER_IMAGE_PYTHON3_11,
// inherited by the runner processes); before the retry the tag is moved to a copy of the image
// holding the marker. A retry runs the same script on the same inputs, so the image is the lever:
// neither time nor load can make a first attempt pass or a retry fail.
//
// The big batch uses 5 of the 8 slots (--parallel 5); the other batches run at the same time on
// the remaining slots, so the file takes about as long as the big batch and its retry.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchSnapshot } from '../../shared/api/batches.js';
import { RGridClient } from '../../cli/api/client.js';
import { watchBatch } from '../../cli/batch/watch.js';
import { runCli, show, spawnCli, workspace, type Workspace } from '../harness/cli.js';
import { startTestStack, type TestStack } from '../harness/stack.js';

let stack: TestStack;
let ws: Workspace;
let client: RGridClient;

const BATCH = /(batch_[a-z2-7]{24})/;
const PARALLEL = 5;
const IMAGE_REPO = 'rgrid-e2e-batch';
const IMAGE_TAG = String(process.pid);
const IMAGE = `${IMAGE_REPO}:${IMAGE_TAG}`;
const FIXED_MARKER = '/etc/rgrid-e2e-fixed';
const FAILING = ['data/extra/item-001.csv', 'data/item-001.csv', 'data/item-002.csv', 'data/item-003.csv', 'data/item-004.csv'];

const PROCESS_PY = `import json, os, sys, time
path = sys.argv[-1]
start = time.time()
text = open(path).read()
if 'ALWAYS' in text or ('FAIL' in text and not os.path.exists('${FIXED_MARKER}')):
    print('refusing', os.path.basename(path), file=sys.stderr)
    sys.exit(3)
time.sleep(0.4)
os.makedirs('detail', exist_ok=True)
open('result.txt', 'w').write(text.upper())
open('detail/times.json', 'w').write(json.dumps({'start': start, 'end': time.time(), 'args': sys.argv[1:]}))
`;

/** The Progress lines of a plain (non-TTY) run, parsed. */
function progressLines(stderr: string) {
  return [...stderr.matchAll(/^Progress: (\d+)\/(\d+) \((\d+)%\) \| ✓ (\d+) ✗ (\d+) ▶ (\d+) ⏳ (\d+)(?: ⊘ (\d+))? \| (.+)$/gm)].map((m) => ({
    line: m[0],
    done: Number(m[1]),
    total: Number(m[2]),
    pct: Number(m[3]),
    ok: Number(m[4]),
    failed: Number(m[5]),
    running: Number(m[6]),
    waiting: Number(m[7]),
    canceled: Number(m[8] ?? 0),
    tail: m[9]!,
  }));
}

function checkProgress(stderr: string, total: number) {
  const lines = progressLines(stderr);
  expect(lines.length, stderr).toBeGreaterThan(0);
  for (const [i, l] of lines.entries()) {
    expect(l.total, l.line).toBe(total);
    expect(l.ok + l.failed + l.canceled, l.line).toBe(l.done);
    expect(l.done + l.running + l.waiting, l.line).toBe(total);
    expect(l.pct, l.line).toBe(Math.floor((l.done * 100) / total));
    if (i > 0) expect(l.done, l.line).toBeGreaterThanOrEqual(lines[i - 1]!.done);
  }
  expect(lines[0]!.done, 'the first line comes before anything finished').toBeLessThan(total);
  const last = lines[lines.length - 1]!;
  expect(last.done).toBe(total);
  expect(last.tail).toMatch(/^finished in \d/);
  expect(stderr).not.toMatch(/[\r\u001b]/); // plain lines: no carriage returns, no colors
  return last;
}

function maxOverlap(intervals: { start: number; end: number }[]): number {
  const events = intervals.flatMap((i) => [
    [i.start, 1],
    [i.end, -1],
  ]);
  events.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let cur = 0;
  let max = 0;
  for (const [, d] of events) max = Math.max(max, (cur += d!));
  return max;
}

async function listDirs(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** The runners' python3.11 image from now on: the same, plus the marker that makes FAIL inputs pass. */
async function fixImage(): Promise<void> {
  const docker = new Docker();
  const c = await docker.createContainer({ Image: 'python:3.11-slim', Cmd: ['touch', FIXED_MARKER], Labels: { 'rgrid.e2e': 'batch' }, HostConfig: { NetworkMode: 'none' } });
  try {
    await c.start();
    expect((await c.wait()).StatusCode).toBe(0);
    await c.commit({ repo: IMAGE_REPO, tag: IMAGE_TAG });
  } finally {
    await c.remove({ force: true });
  }
}

beforeAll(async () => {
  // Before the stack starts: runner processes inherit this process's environment.
  await new Docker().getImage('python:3.11-slim').tag({ repo: IMAGE_REPO, tag: IMAGE_TAG });
  process.env.RGRID_RUNNER_IMAGE_PYTHON3_11 = IMAGE;
  stack = await startTestStack({ runners: 2, slots: 4 });
  ws = await workspace(stack);
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey }, { onRetry: () => {} });
  await writeFile(join(ws.cwd, 'process.py'), PROCESS_PY);
  await mkdir(join(ws.cwd, 'data', 'extra'), { recursive: true });
  for (let i = 0; i < 98; i++) {
    const name = `data/item-${String(i).padStart(3, '0')}.csv`;
    await writeFile(join(ws.cwd, name), `row ${i}${FAILING.includes(name) ? ' FAIL' : ''}\n`);
  }
  for (const name of ['data/extra/item-000.csv', 'data/extra/item-001.csv']) await writeFile(join(ws.cwd, name), `extra ${name}${FAILING.includes(name) ? ' FAIL' : ''}\n`);
  await mkdir(join(ws.cwd, 'bad'));
  for (const n of [1, 2, 3]) await writeFile(join(ws.cwd, 'bad', `b${n}.csv`), `ALWAYS ${n}\n`);
  await mkdir(join(ws.cwd, 'ff'));
  for (const n of [1, 2, 3, 4, 5, 6]) await writeFile(join(ws.cwd, 'ff', `f${n}.csv`), n === 1 ? 'ALWAYS first\n' : `ok ${n}\n`);
}, 180_000);

afterAll(async () => {
  await ws?.cleanup();
  await stack?.cleanup();
  delete process.env.RGRID_RUNNER_IMAGE_PYTHON3_11;
  // Only the tag goes (python:3.11-slim stays); the marker copy goes with it.
  await new Docker().getImage(IMAGE).remove().catch(() => undefined);
});

describe.concurrent('rgrid run --batch with runners', () => {
  it('100 inputs, 5 failing: outputs per input as they finish, the summary, batch_failures.txt, exit 0; retry fixes exactly the 5', async () => {
    const args = ['run', 'process.py', '--batch', 'data/*.csv', '--batch', 'data/extra/*.csv', '--parallel', String(PARALLEL)];
    const run = spawnCli(args, ws);
    const [, id] = await run.waitFor(new RegExp(`Created ${BATCH.source}`), 'stderr', 120_000);
    // A watcher of our own, next to the CLI's: the WebSocket delivers the changes (throttled).
    const seen: BatchSnapshot[] = [];
    const watched = watchBatch(client, id!, { onSnapshot: (s) => seen.push(s), pollMs: 120_000, openPollMs: 120_000 });
    // Outputs land while the batch is still running, not only at the end.
    let earlyOutputs = false;
    while (!earlyOutputs && run.child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 500));
      const snap = (await client.getBatch(id!)).batch;
      const dirs = await listDirs(join(ws.cwd, 'outputs')).catch(() => []);
      if (dirs.length > 0 && snap.finishedAt === null) earlyOutputs = true;
    }
    const r = await run.done;
    expect(r.code, show(args, r)).toBe(0);
    expect(earlyOutputs, 'some outputs were downloaded before the batch finished').toBe(true);

    // The summary and the failures, each with its kind and message.
    expect(r.stderr).toMatch(/^Uploading 10[01] files/m); // 100 inputs and the script (unless a batch running meanwhile stored it)
    expect(r.stderr).toMatch(/^✓ 95 succeeded, 5 failed$/m);
    for (const input of FAILING) {
      expect(r.stderr).toMatch(new RegExp(`^  ✗ ${input.replace(/\./g, '\\.')} +script_error: script exited with code 3  \\(exec_[a-z2-7]{24}\\)$`, 'm'));
      expect(r.stderr).toMatch(new RegExp(`^✗ ${input.replace(/\./g, '\\.')}: script exited with code 3`, 'm')); // live, as it failed
    }
    expect(r.stderr).toMatch(/Failures recorded in outputs\/batch_failures\.txt/);
    expect(r.stderr).toMatch(/Downloaded 190 outputs of 95 inputs to outputs/);
    expect(r.stderr).toContain(`rgrid retry --batch ${id}`);
    const last = checkProgress(r.stderr, 100);
    expect(last).toMatchObject({ ok: 95, failed: 5, running: 0, waiting: 0 });

    // One folder per succeeded input; same-named inputs from two folders get their folder's name.
    const base = join(ws.cwd, 'outputs');
    const dirs = await listDirs(base);
    expect(dirs).toHaveLength(95);
    expect(dirs).toContain('item-000 (data)');
    expect(dirs).toContain('item-000 (extra)');
    expect(dirs).toContain('item-097');
    // Failed inputs have no folder (their outputs are not downloaded).
    for (const d of ['item-001 (extra)', 'item-001 (data)', 'item-002', 'item-003', 'item-004']) expect(dirs).not.toContain(d);
    expect(await readFile(join(base, 'item-042', 'result.txt'), 'utf8')).toBe('ROW 42\n');
    expect(await readFile(join(base, 'item-000 (extra)', 'result.txt'), 'utf8')).toBe('EXTRA DATA/EXTRA/ITEM-000.CSV\n');
    // The script saw its file as the last argument, rewritten to its place in /work.
    expect(JSON.parse(await readFile(join(base, 'item-042', 'detail', 'times.json'), 'utf8')).args).toEqual(['/work/item-042.csv']);

    const failures = (await readFile(join(base, 'batch_failures.txt'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(failures[0]).toBe('execution_id\tinput\tkind\tmessage');
    const rows = failures.slice(1).map((l) => l.split('\t'));
    expect(rows.map((x) => x[1]).sort()).toEqual([...FAILING].sort());
    for (const row of rows) {
      expect(row[0]).toMatch(/^exec_[a-z2-7]{24}$/);
      expect(row.slice(2)).toEqual(['script_error', 'script exited with code 3']);
    }

    // --parallel held: never more than 5 scripts ran at once (8 slots were free for them).
    const times = await Promise.all(dirs.map(async (d) => JSON.parse(await readFile(join(base, d, 'detail', 'times.json'), 'utf8')) as { start: number; end: number }));
    const overlap = maxOverlap(times);
    expect(overlap).toBeLessThanOrEqual(PARALLEL);
    expect(overlap).toBeGreaterThanOrEqual(2);

    // The watcher followed the batch (throttled deltas merged into its view, never backwards) and
    // ended on the final snapshot, with every failure.
    const final = await watched;
    expect(final.counts).toMatchObject({ total: 100, succeeded: 95, failed: 5 });
    expect(final.failures.map((f) => f.inputName).sort()).toEqual([...FAILING].sort());
    const versions = seen.map((s) => s.version);
    expect([...versions].sort((a, b) => a - b), versions.join(',')).toEqual(versions);
    expect(seen.length).toBeGreaterThan(2); // the first snapshot, progress while it ran, the final one

    // Retry: exactly the failed executions, outputs into the same folders, the failures file goes.
    await fixImage();
    const retryArgs = ['retry', '--batch', id!, '--json'];
    const rr = await runCli(retryArgs, ws);
    expect(rr.code, show(retryArgs, rr)).toBe(0);
    expect(rr.stderr).toMatch(new RegExp(`^Retrying 5 failed executions from ${id}$`, 'm'));
    expect(rr.stderr).toMatch(/^Retried 5: 5 succeeded, 0 did not\.$/m);
    expect(rr.stderr).toMatch(new RegExp(`^✓ ${id} now: 100 succeeded, 0 failed$`, 'm'));
    const progress = progressLines(rr.stderr);
    expect(progress[progress.length - 1]).toMatchObject({ done: 100, ok: 100, failed: 0 });
    const result = JSON.parse(rr.stdout);
    expect(result.retried.map((x: { retryOf: string }) => x.retryOf).sort()).toEqual(rows.map((x) => x[0]).sort());
    expect(result.outputs).toHaveLength(5);
    expect((await listDirs(base)).length).toBe(100);
    expect(await readFile(join(base, 'item-003', 'result.txt'), 'utf8')).toBe('ROW 3 FAIL\n');
    expect(await readFile(join(base, 'item-001 (data)', 'result.txt'), 'utf8')).toBe('ROW 1 FAIL\n');
    expect(await readFile(join(base, 'item-001 (extra)', 'result.txt'), 'utf8')).toBe('EXTRA DATA/EXTRA/ITEM-001.CSV FAIL\n');
    await expect(stat(join(base, 'batch_failures.txt'))).rejects.toThrow(/ENOENT/);

    // status, list --batches and download agree with the run (four processes at once).
    const [st, ls, dl, cancel] = await Promise.all([
      runCli(['status', id!], ws),
      runCli(['list', '--batches'], ws),
      runCli(['download', id!, '--output-dir', 'again'], ws),
      runCli(['cancel', id!], ws),
    ]);
    expect(st.code, show(['status'], st)).toBe(0);
    expect(st.stdout).toMatch(/status +finished \(100 succeeded, 0 failed\)/);
    expect(st.stdout).toMatch(/progress +100\/100 \(100%\) \| ✓ 100 ✗ 0 ▶ 0 ⏳ 0 \| finished in/);
    expect(st.stdout).toMatch(/parallel +at most 5 at once/);
    expect(ls.stdout).toMatch(new RegExp(`^${id} +finished +100/100 +100 +0 `, 'm'));
    expect(dl.code, show(['download'], dl)).toBe(0);
    expect(await listDirs(join(ws.cwd, 'again'))).toEqual(await listDirs(base));
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toMatch(/has already finished/);
  }, 240_000);

  it('every input failing: the summary lists each, exit 1', async () => {
    const args = ['run', 'process.py', '--batch', 'bad/*.csv', '--output-dir', 'bad-out'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(1);
    expect(r.stderr).toMatch(/^Failed: 0 succeeded, 3 failed$/m);
    for (const n of [1, 2, 3]) expect(r.stderr).toMatch(new RegExp(`^  ✗ bad/b${n}\\.csv  script_error: script exited with code 3`, 'm'));
    expect(checkProgress(r.stderr, 3)).toMatchObject({ ok: 0, failed: 3 });
    expect(await readdir(join(ws.cwd, 'bad-out'))).toEqual(['batch_failures.txt']);
  }, 90_000);

  it('--fail-fast cancels the rest after the first failure, exit 1', async () => {
    const args = ['run', 'process.py', '--batch', 'ff/*.csv', '--fail-fast', '--parallel', '1', '--output-dir', 'ff-out', '--flat'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(1);
    // The first input fails; the cancel follows its completion, and the dispatcher may already have
    // handed out the next input in between (it then runs to its end): at most one more succeeds.
    const m = r.stderr.match(/^Failed: ([01]) succeeded, 1 failed, ([45]) canceled$/m);
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1]) + Number(m![2])).toBe(5);
    expect(r.stderr).toMatch(/^Canceled inputs by --fail-fast after the first failure:$/m);
    expect(r.stderr).toMatch(/^  ✗ ff\/f1\.csv  script_error: script exited with code 3/m);
    expect(checkProgress(r.stderr, 6)).toMatchObject({ ok: Number(m![1]), failed: 1, canceled: Number(m![2]) });
    const rows = (await readFile(join(ws.cwd, 'ff-out', 'batch_failures.txt'), 'utf8')).split('\n').filter((l) => l.startsWith('exec_'));
    const kinds = rows.map((l) => l.split('\t').slice(1, 3).join(' '));
    expect(kinds[0]).toBe('ff/f1.csv script_error');
    expect(kinds.slice(1).every((k) => k.endsWith(' canceled'))).toBe(true);
    expect(kinds).toHaveLength(1 + Number(m![2]));
  }, 90_000);

  it('a pattern matching nothing: a clear error, exit 1, nothing created', async () => {
    const r = await runCli(['run', 'process.py', '--batch', 'nothing/*.csv'], ws);
    expect(r.code, show(['run', '--batch'], r)).toBe(1);
    expect(r.stderr).toMatch(/^Error: No files match --batch 'nothing\/\*\.csv'$/m);
    expect((await client.listBatches({ limit: 200 })).batches.map((b) => b.name)).not.toContain('process.py nothing/*.csv');
  });

  it('webhooks: created by the CLI; good, bad, stale and replayed signatures; the signed callback arrives', async () => {
    const hookDir = join(ws.cwd, 'hook');
    await mkdir(hookDir);
    await writeFile(join(hookDir, 'hook.py'), 'import sys\nopen("echo.txt", "w").write(open(sys.argv[2]).read().upper())\n');
    const created = await runCli(['webhook', 'create', 'hook/hook.py', '--name', 'e2e', '--', '--in', '{}'], ws);
    expect(created.code, show(['webhook', 'create'], created)).toBe(0);
    const url = created.stdout.match(/^ {2}URL: +(http:\/\/127\.0\.0\.1:\d+\/hooks\/wh_[a-z2-7]{24})$/m)?.[1];
    const secret = created.stdout.match(/^ {2}Secret: +(whsec_\w+)$/m)?.[1];
    expect(url && secret, created.stdout).toBeTruthy();

    // The printed shell example works as printed (bash, openssl, curl).
    const example = created.stdout.slice(created.stdout.indexOf("  URL='")).split('\n\n')[0]!.replace(/^ {2}/gm, '');
    // Not spawnSync: the object store runs in this process and must keep answering meanwhile.
    const sh = await promisify(execFile)('bash', ['-c', example], { encoding: 'utf8' });
    expect(JSON.parse(sh.stdout), sh.stderr).toMatchObject({ batchId: expect.stringMatching(BATCH), items: 1 });

    // A receiver for the completion callback.
    const received: { headers: IncomingHttpHeaders; body: string }[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        // The first attempt fails: the callback is retried with the same delivery id.
        res.statusCode = received.length === 1 ? 503 : 200;
        res.end(received.length === 1 ? 'busy' : 'ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const callbackUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/done`;
      const body = JSON.stringify({ inputs: [{ name: 'a.txt', content: 'alpha' }, { name: 'b.txt', content: 'beta' }], metadata: { source: 'e2e' }, callback_url: callbackUrl });
      const send = (opts: { ts?: number; delivery?: string; key?: string; tamper?: boolean } = {}) => {
        const ts = String(opts.ts ?? Math.floor(Date.now() / 1000));
        const delivery = opts.delivery ?? `d-${Math.random().toString(36).slice(2)}`;
        let sig = createHmac('sha256', opts.key ?? secret!).update(`${ts}.${delivery}.${body}`).digest('hex');
        if (opts.tamper) sig = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
        return fetch(url!, { method: 'POST', headers: { 'content-type': 'application/json', 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': delivery, 'x-rgrid-signature': `sha256=${sig}` }, body }).then(async (res) => ({ status: res.status, json: (await res.json()) as any }));
      };
      const good = await send({ delivery: 'e2e-delivery-1' });
      expect(good.status, JSON.stringify(good.json)).toBe(201);
      expect(good.json).toMatchObject({ batchId: expect.stringMatching(BATCH), items: 2 });
      expect((await send({ tamper: true })).status).toBe(401);
      expect((await send({ key: 'whsec_wrong' })).status).toBe(401);
      const stale = await send({ ts: Math.floor(Date.now() / 1000) - 600 });
      expect(stale.status).toBe(401);
      expect(stale.json.error.message).toMatch(/5 minutes/);
      expect((await send({ delivery: 'e2e-delivery-1' })).status).toBe(409);

      // The callback: signed with the webhook's secret, the finished batch's summary.
      for (let i = 0; i < 240 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 250));
      expect(received.length, 'callback received, and again after the 503').toBeGreaterThanOrEqual(2);
      expect(received.map((r) => r.headers['x-rgrid-delivery'])).toEqual([`cb_${good.json.batchId}_1`, `cb_${good.json.batchId}_1`]);
      const cb = received[1]!;
      const expected = createHmac('sha256', secret!).update(`${cb.headers['x-rgrid-timestamp']}.${cb.headers['x-rgrid-delivery']}.${cb.body}`).digest('hex');
      expect(cb.headers['x-rgrid-signature']).toBe(`sha256=${expected}`);
      expect(Math.abs(Number(cb.headers['x-rgrid-timestamp']) - Date.now() / 1000)).toBeLessThan(300);
      const payload = JSON.parse(cb.body);
      expect(payload).toMatchObject({ type: 'batch.finished', batch: { id: good.json.batchId, status: 'finished', counts: { total: 2, succeeded: 2 }, metadata: { source: 'e2e' } } });

      // The batch's outputs, per input, through the CLI.
      const dl = await runCli(['download', good.json.batchId, '--output-dir', 'hook-out'], ws);
      expect(dl.code, show(['download'], dl)).toBe(0);
      expect(await readFile(join(ws.cwd, 'hook-out', 'a', 'echo.txt'), 'utf8')).toBe('ALPHA');
      expect(await readFile(join(ws.cwd, 'hook-out', 'b', 'echo.txt'), 'utf8')).toBe('BETA');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }

    const listed = await runCli(['webhook', 'list'], ws);
    expect(listed.stdout).toContain(url!);
    const id = url!.split('/').pop()!;
    const del = await runCli(['webhook', 'delete', id], ws);
    expect(del.code, show(['webhook', 'delete'], del)).toBe(0);
    const afterDelete = await fetch(url!, { method: 'POST', body: '{}' });
    expect(afterDelete.status).toBe(404);
  }, 120_000);
});
