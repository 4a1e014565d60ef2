/**
 * Hostile input against the real HTTP stack (Miniflare over TCP, the verifying S3 store) and a real
 * runner: every case gets its expected clear error (status, code, a message naming the problem)
 * and nothing crashes — the control plane keeps answering and the runner keeps running jobs.
 *
 * What control-plane/test/validation.test.ts, webhooks.test.ts, executions.test.ts,
 * runner-agent/src/docker/runtime.test.ts and files.test.ts already cover is not repeated here;
 * docs/reliability.md lists both.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { RunnerAgent } from '../../runner-agent/src/agent.js';
import { requireDocker } from '../../runner-agent/src/docker/test-support.js';
import { Client, Stack, download, logsText, outputs, putBlob, report, sha256, submit, waitFinal, type Reply } from './harness.js';

const docker = new Docker();
let stack: Stack;
let agent: RunnerAgent;
let client: Client;
const runnerLog: string[] = [];
/**
 * The runner's live-log cap for these tests (default 10 MB): 4 MB, so that a burst puts well over
 * the API's 1 MB request limit into one flush window whatever the machine's speed.
 */
const LIVE_LOG_CAP = 4 * 1024 * 1024;

beforeAll(async () => {
  await requireDocker(docker);
  stack = await Stack.start({ leaseSeconds: 20, presignSeconds: 600 });
  client = stack.alice.client;
  agent = new RunnerAgent({ ...stack.runnerConfig('hostile', { slots: '3' }), maxStreamedLogBytes: LIVE_LOG_CAP }, { log: (l) => runnerLog.push(l) });
  await agent.start();
}, 120_000);

afterAll(async () => {
  await agent?.kill();
  await stack?.stop();
});

interface Case {
  what: string;
  method: string;
  path: string;
  body?: unknown;
  raw?: string | Uint8Array;
  chunked?: Buffer;
  token?: string | null;
  headers?: Record<string, string>;
  /** Expected status and error code; `message` must match when given. */
  status: number;
  code?: string;
  message?: RegExp;
}

const observed: { what: string; expected: string; got: string }[] = [];

async function send(c: Case): Promise<Reply> {
  const api = c.token === undefined ? client : new Client(stack.url, c.token ?? undefined);
  if (c.chunked) {
    // No Content-Length: the body arrives in chunks and its size is only known at the end.
    const res = await request(stack.url + c.path, {
      method: c.method as 'POST',
      headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' },
      body: Readable.from([c.chunked.subarray(0, c.chunked.length / 2), c.chunked.subarray(c.chunked.length / 2)]),
    });
    const text = await res.body.text();
    return { status: res.statusCode, text, json: JSON.parse(text), ms: 0 };
  }
  return api.call(c.method, c.path, { body: c.body, raw: c.raw, headers: c.headers });
}

/** Runs each case, records what happened, and checks all of them (one failure does not hide the rest). */
async function runCases(cases: Case[]): Promise<void> {
  const failures: string[] = [];
  for (const c of cases) {
    const r = await send(c);
    const got = `${r.status} ${r.json?.error?.code ?? ''} ${String(r.json?.error?.message ?? '').slice(0, 160)}`.trim();
    observed.push({ what: c.what, expected: `${c.status} ${c.code ?? ''}`.trim(), got });
    const ok = r.status === c.status && (!c.code || r.json?.error?.code === c.code) && (!c.message || c.message.test(r.json?.error?.message ?? '')) && (r.status < 400 || typeof r.json?.error?.message === 'string');
    if (!ok) failures.push(`${c.what}: expected ${c.status} ${c.code ?? ''} ${c.message ?? ''}, got ${got}`);
  }
  // The control plane is still fine after all of that.
  expect((await client.call('GET', '/health')).status).toBe(200);
  expect(failures).toEqual([]);
}

const sha = (s: string) => sha256(s);
const script = { name: 'job.py', sha256: sha('print(1)\n'), size: 9 };
const file = (path: string) => ({ path, sha256: sha(path), size: path.length });
const batch = (over: Record<string, unknown> = {}, items: unknown[] = [{ inputName: 'a.csv', inputs: [file('a.csv')] }]) => ({ template: { script }, items, ...over });
const VALID_ID = 'exec_aaaaaaaaaaaaaaaaaaaaaaaa';

describe('hostile input: the API', () => {
  it('malformed, oversized and wrongly typed JSON on batch creation: 400/413, the field named', async () => {
    const big = Buffer.from(JSON.stringify(batch({ name: 'x'.repeat(2 * 1024 * 1024) })));
    await runCases([
      { what: 'truncated JSON', method: 'POST', path: '/api/v1/batches', raw: '{"template": ', status: 400, code: 'bad_request', message: /not valid JSON/ },
      { what: 'a JSON string', method: 'POST', path: '/api/v1/batches', raw: '"batch"', status: 400, code: 'bad_request' },
      { what: 'JSON null', method: 'POST', path: '/api/v1/batches', raw: 'null', status: 400, code: 'bad_request' },
      { what: '200k nested arrays', method: 'POST', path: '/api/v1/batches', raw: '['.repeat(200_000) + ']'.repeat(200_000), status: 400, code: 'bad_request' },
      { what: 'template is a string', method: 'POST', path: '/api/v1/batches', body: { template: 'job.py', items: [] }, status: 400, code: 'bad_request', message: /template/ },
      { what: 'items is a string', method: 'POST', path: '/api/v1/batches', body: { template: { script }, items: 'many' }, status: 400, code: 'bad_request', message: /items/ },
      { what: 'cpus is a word', method: 'POST', path: '/api/v1/batches', body: batch({ template: { script, limits: { timeoutSeconds: 10, memoryMb: 128, cpus: 'lots' } } }), status: 400, code: 'bad_request', message: /template\.limits\.cpus/ },
      { what: 'size 1e30', method: 'POST', path: '/api/v1/batches', body: batch({}, [{ inputName: 'a', inputs: [{ path: 'a', sha256: sha('a'), size: 1e30 }] }]), status: 400, code: 'bad_request', message: /items\.0\.inputs\.0\.size/ },
      { what: 'sha256 not hex', method: 'POST', path: '/api/v1/batches', body: batch({}, [{ inputName: 'a', inputs: [{ path: 'a', sha256: 'z'.repeat(64), size: 1 }] }]), status: 400, code: 'bad_request' },
      { what: 'unknown field', method: 'POST', path: '/api/v1/batches', body: batch({ priority: 'high' }), status: 400, code: 'bad_request' },
      { what: '1001 items in one request', method: 'POST', path: '/api/v1/batches', body: batch({}, Array.from({ length: 1001 }, (_, i) => ({ inputName: `f${i}` }))), status: 400, code: 'bad_request', message: /items/ },
      { what: 'duplicate inputName', method: 'POST', path: '/api/v1/batches', body: batch({}, [{ inputName: 'a' }, { inputName: 'a' }]), status: 400, code: 'bad_request', message: /appears twice/ },
      { what: '2 MB body with Content-Length', method: 'POST', path: '/api/v1/batches', raw: big, status: 413, code: 'payload_too_large' },
      { what: '2 MB body, chunked (no Content-Length)', method: 'POST', path: '/api/v1/batches', chunked: big, status: 413, code: 'payload_too_large' },
      { what: 'wrong content type', method: 'POST', path: '/api/v1/batches', raw: 'template=x', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 400, code: 'bad_request' },
    ]);
  });

  it('path traversal and bad names in inputs, scripts and batch input names: 400', async () => {
    const long = 'd/'.repeat(600) + 'x';
    const input = (path: string) => ({ script, inputs: [{ path, sha256: sha('x'), size: 1 }] });
    const cases: Case[] = [];
    for (const [label, path] of [
      ['../ prefix', '../etc/passwd'],
      ['.. in the middle', 'a/../../b'],
      ['absolute', '/etc/passwd'],
      ['NUL', 'a\u0000b'],
      ['backslash', '..\\..\\x'],
      ['empty segment', 'a//b'],
      ['dot segment', './a'],
      ['1201-byte path', long],
    ] as const) {
      cases.push({ what: `execution input path: ${label}`, method: 'POST', path: '/api/v1/executions', body: input(path), status: 400, code: 'bad_request', message: /inputs\.0\.path/ });
      cases.push({ what: `batch item input path: ${label}`, method: 'POST', path: '/api/v1/batches', body: batch({}, [{ inputName: 'x', inputs: [{ path, sha256: sha('x'), size: 1 }] }]), status: 400, code: 'bad_request', message: /items\.0\.inputs\.0\.path/ });
      // The batch input name becomes the item's output folder on download (./outputs/<input-name>/).
      cases.push({ what: `batch inputName: ${label}`, method: 'POST', path: '/api/v1/batches', body: batch({}, [{ inputName: path }]), status: 400, code: 'bad_request', message: /inputName/ });
    }
    for (const name of ['..', '.', 'a/b', '../x.py', 'a\\b.py', 'x\u0000.py', 'x'.repeat(256)]) {
      cases.push({ what: `script name ${JSON.stringify(name.slice(0, 12))}`, method: 'POST', path: '/api/v1/executions', body: { script: { ...script, name } }, status: 400, code: 'bad_request', message: /script\.name/ });
    }
    await runCases(cases);
  });

  it('invalid ids and query strings: 400 or 404, never 5xx', async () => {
    const ids = ['exec_AAAAAAAAAAAAAAAAAAAAAAAA', 'exec_aaaaaaaaaaaaaaaaaaaaaaa', 'batch_aaaaaaaaaaaaaaaaaaaaaaaa', '..%2F..%2Fadmin%2Fv1%2Faccounts', "exec_aaaa'%20OR%201=1--", 'x'.repeat(10_000), '%00', '%F0%9F%92%A9', '%ZZ'];
    const cases: Case[] = [];
    for (const id of ids) {
      cases.push({ what: `GET execution ${id.slice(0, 30)}`, method: 'GET', path: `/api/v1/executions/${id}`, status: 400, code: 'bad_request', message: /execution id/ });
      // batch_aaaa… is a well-formed batch id that does not exist: 404, not 400.
      const wellFormedBatch = id.startsWith('batch_');
      cases.push({ what: `GET batch ${id.slice(0, 30)}`, method: 'GET', path: `/api/v1/batches/${id}`, status: wellFormedBatch ? 404 : 400, code: wellFormedBatch ? 'not_found' : 'bad_request', message: wellFormedBatch ? /not found/ : /batch id/ });
      cases.push({ what: `DELETE webhook ${id.slice(0, 30)}`, method: 'DELETE', path: `/api/v1/webhooks/${id}`, status: 400, code: 'bad_request' });
      cases.push({ what: `POST /hooks/${id.slice(0, 30)}`, method: 'POST', path: `/hooks/${id}`, raw: '{}', token: null, status: 400, code: 'bad_request' });
    }
    for (const artifact of ['../../x', "' OR 1=1 --", 'x'.repeat(5000)]) {
      cases.push({ what: `artifact id ${artifact.slice(0, 20)}`, method: 'GET', path: `/api/v1/executions/${VALID_ID}/artifacts/${encodeURIComponent(artifact)}`, status: 404, code: 'not_found' });
    }
    for (const q of ['limit=-1', 'limit=abc', 'limit=1e9', `cursor=${'c'.repeat(300)}`, 'cursor=garbage', 'status=queued&status=running', 'batch=not-an-id', 'metadata=novalue']) {
      cases.push({ what: `list ?${q.slice(0, 30)}`, method: 'GET', path: `/api/v1/executions?${q}`, status: 400, code: 'bad_request' });
    }
    cases.push({ what: 'logs ?cursor=1.x', method: 'GET', path: `/api/v1/executions/${VALID_ID}/logs?cursor=1.x`, status: 404, code: 'not_found' });
    await runCases(cases);
  });

  it('the runner API refuses traversal in output names and oversized log chunks', async () => {
    const reg = await new Client(stack.url, undefined).ok('POST', '/runner/v1/register', { registrationToken: stack.registrationToken, name: 'api-only', slots: 1 });
    const rt = reg.runnerToken as string;
    const out = (path: string) => ({ path, sha256: sha('o'), size: 1 });
    const cases: Case[] = [];
    for (const path of ['../x', '/etc/passwd', 'a/../../x', 'a\u0000b']) {
      cases.push({ what: `complete with output ${JSON.stringify(path)}`, method: 'POST', path: `/runner/v1/executions/${VALID_ID}/complete`, token: rt, body: { attempt: 1, outcome: 'succeeded', outputs: [out(path)] }, status: 400, code: 'bad_request', message: /outputs\.0\.path/ });
      cases.push({ what: `presign output ${JSON.stringify(path)}`, method: 'POST', path: `/runner/v1/executions/${VALID_ID}/outputs/presign`, token: rt, body: { attempt: 1, files: [out(path)] }, status: 400, code: 'bad_request', message: /files\.0\.path/ });
    }
    cases.push({ what: 'log chunk of 70k characters', method: 'POST', path: `/runner/v1/executions/${VALID_ID}/logs`, token: rt, body: { attempt: 1, chunks: [{ seq: 0, stream: 'stdout', data: 'x'.repeat(70_000) }] }, status: 400, code: 'bad_request' });
    cases.push({ what: 'claim with truncated JSON', method: 'POST', path: '/runner/v1/claim', token: rt, raw: '{', status: 400, code: 'bad_request' });
    cases.push({ what: 'attempt 0 in a heartbeat', method: 'POST', path: '/runner/v1/heartbeat', token: rt, body: { activeJobs: 1, jobs: [{ executionId: VALID_ID, attempt: 0 }] }, status: 400, code: 'bad_request' });
    cases.push({ what: 'attempt 0 in a release', method: 'POST', path: `/runner/v1/executions/${VALID_ID}/release`, token: rt, body: { attempt: 0 }, status: 400, code: 'bad_request' });
    await runCases(cases);
  });

  it('requirements that change package sources are refused with the line quoted (batches and webhooks)', async () => {
    const lines = [
      '--index-url http://127.0.0.1:9/simple',
      '--extra-index-url=http://127.0.0.1:9/simple',
      '-i http://127.0.0.1:9/simple',
      '--find-links /tmp/wheels',
      '--trusted-host 127.0.0.1',
      '-e git+https://127.0.0.1/x.git#egg=x',
      '-r other.txt',
      '-c constraints.txt',
      'pkg @ https://127.0.0.1/pkg-1.0-py3-none-any.whl',
      'https://127.0.0.1/pkg-1.0.tar.gz',
      'git+https://127.0.0.1/x.git',
      './local/pkg',
      '/abs/pkg',
      '~/pkg',
      'pkg-1.0-py3-none-any.whl',
      'numpy==1.26.4 \\',
      'numpy==${VERSION}',
      'numpy; python_version > "3" and platform_machine == "x/../../y"',
    ];
    const cases: Case[] = [];
    for (const line of lines) {
      cases.push({ what: `batch requirements: ${line}`, method: 'POST', path: '/api/v1/batches', body: batch({ template: { script, requirements: `requests==2.31.0\n${line}\n` } }), status: 400, code: 'bad_request', message: new RegExp(escape(line.trim())) });
      cases.push({ what: `webhook requirements: ${line}`, method: 'POST', path: '/api/v1/webhooks', body: { name: 'h', template: { script, requirements: `${line}\n` } }, status: 400, code: 'bad_request', message: new RegExp(escape(line.trim())) });
    }
    await runCases(cases);
  });

  it('tampered, repointed, re-methoded and expired presigned URLs are refused; nothing is stored', async () => {
    const content = Buffer.from(`presign test ${Date.now()}\n`);
    const created = await client.ok('POST', '/api/v1/executions', { script, inputs: [{ path: 'in.txt', sha256: sha256(content), size: content.length }] });
    const put = created.uploads.find((u: { sha256: string }) => u.sha256 === sha256(content))!.url as string;
    const u = new URL(put);
    const sig = u.searchParams.get('X-Amz-Signature')!;
    const tampered = new URL(put);
    tampered.searchParams.set('X-Amz-Signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
    const repointed = new URL(put);
    repointed.pathname = repointed.pathname.replace(/[0-9a-f]{64}$/, sha('other'));
    const longer = new URL(put);
    longer.searchParams.set('X-Amz-Expires', '604800');
    const attempt = async (what: string, url: string, method: 'PUT' | 'GET', status: number, code: RegExp) => {
      const res = await request(url, { method, ...(method === 'PUT' ? { body: content, headers: { 'content-length': String(content.length) } } : {}) });
      const text = await res.body.text();
      observed.push({ what: `presigned ${what}`, expected: `${status} ${code.source}`, got: `${res.statusCode} ${/<Code>([^<]*)/.exec(text)?.[1] ?? ''}` });
      expect(res.statusCode, `${what}: ${text}`).toBe(status);
      expect(text, what).toMatch(code);
    };
    await attempt('PUT, signature altered', tampered.toString(), 'PUT', 403, /SignatureDoesNotMatch/);
    await attempt('PUT, other key, same signature', repointed.toString(), 'PUT', 403, /SignatureDoesNotMatch/);
    await attempt('PUT, expiry extended in the URL', longer.toString(), 'PUT', 403, /SignatureDoesNotMatch/);
    await attempt('PUT URL used for GET', put, 'GET', 403, /SignatureDoesNotMatch/);
    stack.storeClockOffsetMs = 601_000; // the store's clock is past the URL's 600 s validity
    try {
      await attempt('PUT, expired', put, 'PUT', 403, /AccessDenied|expired/i);
    } finally {
      stack.storeClockOffsetMs = 0;
    }
    // None of those stored anything: the submit names the file that is missing.
    await putBlob(created.uploads.find((u: { sha256: string }) => u.sha256 === script.sha256).url, Buffer.from('print(1)\n'));
    const early = await client.call('POST', `/api/v1/executions/${created.execution.id}/submit`);
    expect(early.status).toBe(409);
    expect(early.json.error.message).toMatch(/in\.txt was not uploaded/);
    expect(await stack.listObjects(`blobs/${stack.alice.accountId}/${sha('other')}`)).toEqual([]);
    // The genuine URL still works.
    await putBlob(put, content);
    expect((await client.call('POST', `/api/v1/executions/${created.execution.id}/submit`)).status).toBe(200);
    const final = await waitFinal(client, created.execution.id);
    // An artifact's download URL: altered → 403; expired → 403; as issued → 200.
    const log = (await client.ok('GET', `/api/v1/executions/${final.id}/artifacts`)).artifacts.find((a: { path: string }) => a.path === 'stdout.log');
    const dl = new URL(log.download.url);
    const dlSig = dl.searchParams.get('X-Amz-Signature')!;
    dl.searchParams.set('X-Amz-Signature', dlSig.slice(0, -1) + (dlSig.endsWith('0') ? '1' : '0'));
    await attempt('GET artifact, signature altered', dl.toString(), 'GET', 403, /SignatureDoesNotMatch/);
    stack.storeClockOffsetMs = 601_000;
    try {
      await attempt('GET artifact, expired', log.download.url, 'GET', 403, /AccessDenied|expired/i);
    } finally {
      stack.storeClockOffsetMs = 0;
    }
    expect((await download(log)).toString()).toBe('1\n');
  });

  it('webhook deliveries: missing, malformed, wrong, stale and replayed signatures; bad bodies after a good signature', async () => {
    const hook = await client.ok('POST', '/api/v1/webhooks', { name: 'hostile', template: { script } });
    for (const u of hook.uploads) await putBlob(u.url, Buffer.from('print(1)\n'));
    const path = hook.webhook.path as string;
    const secret = hook.secret as string;
    const sign = (ts: string, delivery: string, body: string, key = secret) => `sha256=${createHmac('sha256', key).update(`${ts}.${delivery}.${body}`).digest('hex')}`;
    const now = () => String(Math.floor(Date.now() / 1000));
    const delivery = (body: string, o: { ts?: string; id?: string; sig?: string; omit?: string } = {}): Case['headers'] => {
      const ts = o.ts ?? now();
      const id = o.id ?? `d-${randomBytes(6).toString('hex')}`;
      const h: Record<string, string> = { 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': id, 'x-rgrid-signature': o.sig ?? sign(ts, id, body) };
      if (o.omit) delete h[o.omit];
      return h;
    };
    const good = JSON.stringify({ inputs: [{ name: 'a.txt', content: 'hello' }] });
    const first = await new Client(stack.url, undefined).call('POST', path, { raw: good, headers: delivery(good, { id: 'once' }) });
    expect(first.status, first.text).toBe(201);
    const other = JSON.stringify({ inputs: [{ name: 'b.txt', content: 'evil' }] });
    const ts = now();
    const bad = (what: string, raw: string, headers: Case['headers'], status: number, code: string, message?: RegExp): Case => ({ what: `webhook: ${what}`, method: 'POST', path, raw, headers, token: null, status, code, message });
    await runCases([
      bad('no signature headers', good, {}, 401, 'unauthorized', /missing/),
      bad('no delivery id', good, delivery(good, { omit: 'x-rgrid-delivery' }), 401, 'unauthorized', /missing/),
      bad('timestamp not a number', good, delivery(good, { ts: 'yesterday' }), 401, 'unauthorized', /timestamp/),
      bad('signature without sha256= prefix', good, { ...delivery(good, { ts }), 'x-rgrid-signature': sign(ts, 'p', good).slice(7), 'x-rgrid-delivery': 'p' }, 401, 'unauthorized', /does not match/),
      bad('signature of another body', other, { 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': 'swap', 'x-rgrid-signature': sign(ts, 'swap', good) }, 401, 'unauthorized', /does not match/),
      bad('signed with another secret', good, delivery(good, { sig: sign(ts, 'k', good, 'whsec_not_it') }), 401, 'unauthorized', /does not match/),
      bad('stale timestamp (10 min old)', good, delivery(good, { ts: String(Math.floor(Date.now() / 1000) - 600) }), 401, 'unauthorized', /5 minutes/),
      bad('replayed delivery id with a fresh timestamp and valid signature', good, delivery(good, { id: 'once' }), 409, 'conflict', /already received/),
      bad('delivery id with a slash', good, delivery(good, { id: '../x' }), 401, 'unauthorized', /delivery id/),
      bad('signed body that is not JSON', 'not json', delivery('not json'), 400, 'bad_request', /not valid JSON/),
      bad('signed body without inputs', '{"inputs": []}', delivery('{"inputs": []}'), 400, 'bad_request'),
      bad('input name ".."', '{"inputs":[{"name":"..","content":"x"}]}', delivery('{"inputs":[{"name":"..","content":"x"}]}'), 400, 'bad_request', /name/),
      bad('input name with a slash', '{"inputs":[{"name":"a/b","content":"x"}]}', delivery('{"inputs":[{"name":"a/b","content":"x"}]}'), 400, 'bad_request', /name/),
      bad('base64 content that is not base64', '{"inputs":[{"name":"a","content":"!!!","encoding":"base64"}]}', delivery('{"inputs":[{"name":"a","content":"!!!","encoding":"base64"}]}'), 400, 'bad_request', /base64/),
      bad('2 MB delivery', 'x'.repeat(2 * 1024 * 1024), delivery('x'), 413, 'payload_too_large'),
    ]);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('hostile input: scripts on a runner', () => {
  it('a burst of 20 MB on stdout: the job succeeds, the live log shows everything up to the cap and says it was cut, the full log is kept', async () => {
    const flood = await submit(client, {
      script: 'import sys\nsys.stdout.buffer.write(b"x" * (20 * 1024 * 1024))\nprint("end")\n',
      request: { limits: { timeoutSeconds: 60, memoryMb: 256, cpus: 1 } },
    });
    const f = await waitFinal(client, flood.id, 90_000);
    const liveStdout = await logsText(client, flood.id, 'stdout');
    const system = await logsText(client, flood.id, 'system');
    const stdoutLog = (await client.ok('GET', `/api/v1/executions/${flood.id}/artifacts`)).artifacts.find((a: { path: string }) => a.path === 'stdout.log');
    await report('hostile-stdout-burst', { status: f.status, liveStdoutBytes: liveStdout.length, liveCap: LIVE_LOG_CAP, truncationNotice: /live log truncated/.test(system), stdoutLogBytes: stdoutLog?.size, storedAs: stdoutLog?.encoding });
    expect(f.status, system).toBe('succeeded');
    expect(stdoutLog.size).toBe(20 * 1024 * 1024 + 4);
    // What `rgrid logs -f` shows: the first 4 MB of the output, all of it, and a notice that the rest was cut.
    expect(liveStdout.length, 'live stdout').toBe(LIVE_LOG_CAP);
    expect(system).toMatch(/live log truncated/);
  }, 120_000);

  it('a script that never exits (ignoring SIGTERM), a fork bomb, an OOM in a child: each ends with its own clear outcome; the runner keeps working', async () => {
    const t0 = Date.now();
    const ran = (e: { startedAt: string | null; finishedAt: string | null }) => (e.startedAt && e.finishedAt ? Date.parse(e.finishedAt) - Date.parse(e.startedAt) : null);
    const stubborn = await submit(client, {
      script: 'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint("ignoring signals", flush=True)\nwhile True:\n    time.sleep(0.5)\n',
      request: { limits: { timeoutSeconds: 3, memoryMb: 128, cpus: 0.5 } },
    });
    const forkBomb = await submit(client, {
      script: 'import os, time\nn = 0\nwhile True:\n    try:\n        os.fork(); n += 1\n    except OSError:\n        time.sleep(0.01)\n',
      request: { limits: { timeoutSeconds: 6, memoryMb: 256, cpus: 0.5 } },
    });
    const [s, b] = await Promise.all([waitFinal(client, stubborn.id, 60_000), waitFinal(client, forkBomb.id, 60_000)]);
    const oomChild = await submit(client, {
      script: 'import subprocess, sys\nr = subprocess.run([sys.executable, "-c", "x = bytearray(300 * 1024 * 1024)\\nfor i in range(0, len(x), 4096): x[i] = 1"])\nprint("child exit", r.returncode, flush=True)\nsys.exit(1 if r.returncode else 0)\n',
      request: { limits: { timeoutSeconds: 60, memoryMb: 64, cpus: 1 } },
    });
    const o = await waitFinal(client, oomChild.id, 60_000);
    // After all that, an ordinary job still runs.
    const after = await waitFinal(client, (await submit(client, { script: 'print("still here")\n' })).id, 60_000);

    await report('hostile-scripts', {
      neverExits: { status: s.status, failureKind: s.failureKind, message: s.message, ranMs: ran(s) },
      forkBomb: { status: b.status, failureKind: b.failureKind, message: b.message, ranMs: ran(b) },
      oomInChild: { status: o.status, failureKind: o.failureKind, message: o.message, exitCode: o.exitCode },
      afterwards: after.status,
      wallMs: Date.now() - t0,
    });
    expect(s).toMatchObject({ status: 'failed', failureKind: 'timeout' });
    expect(s.message).toBe('timed out after 3s');
    expect(ran(s)).toBeLessThan(30_000); // from the claim, so it includes setup on a busy machine
    expect(b).toMatchObject({ status: 'failed', failureKind: 'timeout' });
    expect(o).toMatchObject({ status: 'failed', failureKind: 'oom' });
    expect(o.message).toMatch(/out of memory/);
    expect(after.status).toBe('succeeded');
  }, 180_000);

  it('symlinks and special files in /work, unusual names, 0-byte files: collected or reported, never followed; /tmp is bounded', async () => {
    const script = [
      'import os, socket, errno',
      'def attempt(label, fn):',
      '    try:',
      '        fn(); print(label, "ok")',
      '    except OSError as e:',
      '        print(label, "refused", errno.errorcode.get(e.errno, e.errno))',
      'os.symlink("/", "root-link")',
      'os.symlink("/etc/shadow", "shadow-link")',
      'os.remove("input.txt"); os.symlink("/etc/passwd", "input.txt")',
      'os.makedirs("sub", exist_ok=True); os.symlink("../../..", "sub/up")',
      'attempt("hardlink-script", lambda: os.link("/opt/rgrid/main.py", "script-copy"))',
      'attempt("hardlink-etc", lambda: os.link("/etc/passwd", "passwd-copy"))',
      'os.mkfifo("fifo")',
      's = socket.socket(socket.AF_UNIX); s.bind("sock")',
      'attempt("mknod", lambda: os.mknod("dev", 0o600 | 0o020000, os.makedev(1, 3)))',
      'open(b"bad-\\xff\\xfe.txt", "w").write("x")',
      'open("new\\nline.txt", "w").write("x")',
      'open("back\\\\slash.txt", "w").write("x")',
      'open("empty.out", "w").close()',
      'assert os.path.getsize("empty.in") == 0',
      'open("ok.txt", "w").write("ok")',
      'def fill():',
      '    with open("/tmp/fill", "wb") as f:',
      '        for _ in range(100): f.write(b"\\0" * (1024 * 1024))',
      'attempt("tmp-100MB", fill)',
      'os.remove("/tmp/fill")',
    ].join('\n');
    const e = await submit(client, { script, inputs: [{ path: 'input.txt', content: 'in' }, { path: 'empty.in', content: '' }] });
    const final = await waitFinal(client, e.id, 60_000);
    const stdout = await logsText(client, e.id, 'stdout');
    const system = await logsText(client, e.id, 'system');
    const outs = await outputs(client, e.id);
    await report('hostile-files', { status: final.status, failureKind: final.failureKind, message: final.message, outputs: outs.map((o) => `${o.path} (${o.size} B)`), stdout: stdout.trim().split('\n'), notCollected: system.split('\n').filter((l) => l.includes('not collected')).map((l) => l.slice(0, 120)) });
    expect(final.status, `${final.message}\n${stdout}\n${system}`).toBe('succeeded');
    expect(stdout).toMatch(/hardlink-script refused EXDEV/);
    expect(stdout).toMatch(/hardlink-etc refused EXDEV/);
    expect(stdout).toMatch(/mknod refused EPERM/);
    expect(stdout).toMatch(/tmp-100MB refused ENOSPC/);
    // Regular files only; links, the FIFO, the socket and unrepresentable names are reported.
    expect(outs.map((o) => o.path).sort()).toEqual(['empty.out', 'ok.txt']);
    expect(outs.find((o) => o.path === 'empty.out')!.size).toBe(0);
    expect((await download(outs.find((o) => o.path === 'empty.out')!)).length).toBe(0);
    // Names are quoted as JSON strings (F15): a newline in a file name cannot start a new log line.
    for (const name of ['root-link', 'shadow-link', 'input.txt', 'sub/up', 'fifo', 'sock', 'new\nline.txt', 'back\\slash.txt']) expect(system, name).toContain(`not collected: ${JSON.stringify(name)}`);
    expect(system).toContain('not collected: "new\\nline.txt"');
    expect(system).not.toMatch(/^line\.txt/m);
    expect(system).toMatch(/not collected: "bad-.*not valid UTF-8/);
  }, 120_000);

  it('an output path longer than the API accepts (1024) is reported as not collected; the other outputs are kept', async () => {
    const script = 'import os\ndeep = "/".join(["d" * 200] * 6)\nos.makedirs(deep)\nopen(deep + "/deep.txt", "w").write("x")\nopen("ok.txt", "w").write("ok")\n';
    const e = await submit(client, { script });
    const final = await waitFinal(client, e.id, 60_000);
    const system = await logsText(client, e.id, 'system');
    const outs = await outputs(client, e.id);
    await report('hostile-long-output-path', { status: final.status, failureKind: final.failureKind, message: final.message, outputs: outs.map((o) => o.path) });
    expect(final.status, final.message).toBe('succeeded');
    expect(outs.map((o) => o.path)).toEqual(['ok.txt']);
    expect(system).toMatch(/not collected: "d{200}\/.*deep\.txt": path longer than 1024 characters/);
  });

  it('a 0-byte script runs; an input layout the runner cannot place (inputs "a" and "a/b") and a script named ".." are refused at create time (F14, F5)', async () => {
    const empty = await submit(client, { script: '' });
    const body = (b: string) => ({ path: b, sha256: sha(b), size: b.length });
    // An execution and a batch item with input "a" (a file) and "a/b" (which would go under it).
    const conflicting = await client.call('POST', '/api/v1/executions', { body: { script, inputs: [body('a'), body('a/b')] } });
    const conflictingItem = await client.call('POST', '/api/v1/batches', { body: batch({}, [{ inputName: 'x', inputs: [body('a'), body('a/b')] }]) });
    const dotdot = await client.call('POST', '/api/v1/executions', { body: { script: { ...script, name: '..' } } });
    const x = await waitFinal(client, empty.id);
    const summary = (r: Reply) => `${r.status} ${r.json?.error?.code ?? ''} ${r.json?.error?.message ?? ''}`;
    await report('hostile-layout', { emptyScript: x.status, conflictingInputs: summary(conflicting), conflictingBatchItem: summary(conflictingItem), scriptNamedDotDot: summary(dotdot) });
    expect(x.status).toBe('succeeded');
    for (const r of [conflicting, conflictingItem]) {
      expect(r.status, r.text).toBe(400);
      expect(r.json.error.code).toBe('bad_request');
      // Both inputs are named, so the user knows which pair to rename.
      expect(r.json.error.message).toContain('"a"');
      expect(r.json.error.message).toContain('"a/b"');
    }
    expect(dotdot.status, dotdot.text).toBe(400);
    expect(dotdot.json.error.message).toMatch(/script\.name/);
  });

  it('presigned URLs that expired before the runner used them: the job fails with a clear error', async () => {
    // Blobs the account already has: the create needs no upload and autoSubmit queues at once,
    // without the control plane touching the store.
    const input = `x ${Date.now()}`;
    const first = await submit(client, { script: 'print("x")\n', inputs: [{ path: 'in.txt', content: input }] });
    await waitFinal(client, first.id);
    const code = Buffer.from('print("x")\n');
    // From now on the store's clock is an hour ahead: every URL the runner gets is already expired.
    stack.storeClockOffsetMs = 3_600_000;
    let final;
    try {
      const created = await client.ok('POST', '/api/v1/executions', { script: { name: 'main.py', sha256: sha256(code), size: code.length }, inputs: [{ path: 'in.txt', sha256: sha256(input), size: input.length }], autoSubmit: true });
      expect(created.uploads).toEqual([]);
      final = await waitFinal(client, created.execution.id, 60_000);
    } finally {
      stack.storeClockOffsetMs = 0;
    }
    await report('hostile-expired-urls-at-runner', { status: final.status, failureKind: final.failureKind, message: final.message });
    expect(final.status).toBe('failed');
    // The first thing that failed was the download of the script: that is what the user must see.
    expect(final.failureKind).toBe('input_error');
    expect(final.message).toMatch(/403/);
  });
});

afterAll(async () => {
  await report('hostile-api-cases', { cases: observed.length, observed });
});
