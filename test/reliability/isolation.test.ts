/**
 * Isolation, over real HTTP against the Miniflare control plane and with a real runner:
 * - another account's executions, batches, artifacts, logs and webhooks answer 404 (reads and
 *   writes), its results are never reused, its lists stay empty;
 * - revoked keys answer 401; runner tokens, registration tokens, user keys and the admin secret each
 *   work only where they belong;
 * - a runner can only act on the attempt it holds (heartbeat, logs, uploads, release, complete);
 * - a job cannot escape its container: host paths, the network, privileged operations all fail.
 *
 * control-plane/test/auth.test.ts and dispatch.test.ts cover part of this inside workerd;
 * docs/reliability.md lists both.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { RunnerAgent } from '../../runner-agent/src/agent.js';
import { requireDocker } from '../../runner-agent/src/docker/test-support.js';
import { Client, Stack, logsText, outputs, putBlob, report, sha256, submit, submitBatch, waitBatch, waitFinal, type Account, type Reply } from './harness.js';

const docker = new Docker();
let stack: Stack;
let agent: RunnerAgent;
let alice: Account;
let bob: Account;
/** Alice's things that Bob must not reach. */
const a = { exec: '', artifact: '', batch: '', hook: '', hookPath: '' };
const observed: { who: string; what: string; got: number; expected: number }[] = [];

beforeAll(async () => {
  await requireDocker(docker);
  stack = await Stack.start({ leaseSeconds: 20 });
  agent = new RunnerAgent(stack.runnerConfig('iso', { slots: '2' }), { log: () => undefined });
  await agent.start();
  alice = stack.alice;
  bob = await stack.newAccount('bob');
  const e = await submit(alice.client, { script: 'open("secret.txt", "w").write("alice only")\nprint("alice log")\n', inputs: [{ path: 'in.txt', content: 'alice input' }] });
  expect((await waitFinal(alice.client, e.id)).status).toBe('succeeded');
  a.exec = e.id;
  a.artifact = (await outputs(alice.client, e.id))[0].id;
  const b = await submitBatch(alice.client, { script: 'print(1)\n', items: [{ name: 'x.txt', content: 'x' }, { name: 'y.txt', content: 'y' }] });
  await waitBatch(alice.client, b.batchId, 60_000);
  a.batch = b.batchId;
  const hook = await alice.client.ok('POST', '/api/v1/webhooks', { name: 'alice-hook', template: { script: { name: 'h.py', sha256: sha256('print(2)\n'), size: 9 } } });
  for (const u of hook.uploads) await putBlob(u.url, Buffer.from('print(2)\n'));
  a.hook = hook.webhook.id;
  a.hookPath = hook.webhook.path;
}, 180_000);

afterAll(async () => {
  await report('isolation', { checks: observed.length, observed });
  await agent?.kill();
  await stack?.stop();
});

/** A WebSocket upgrade request (undici refuses the header): the answer to it, upgraded or not. */
function websocketUpgrade(path: string, token: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(stack.url + path, {
      headers: { authorization: `Bearer ${token}`, upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, json: undefined, text: 'upgraded', ms: 0 });
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text || 'null'), text, ms: 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function expectStatus(who: string, what: string, r: Promise<Reply>, expected: number, code?: string): Promise<Reply> {
  const res = await r;
  observed.push({ who, what, got: res.status, expected });
  // Soft: one wrong answer is reported without hiding the cases after it.
  expect.soft(res.status, `${who}: ${what}: ${res.text.slice(0, 300)}`).toBe(expected);
  if (code) expect.soft(res.json?.error?.code, `${who}: ${what}`).toBe(code);
  return res;
}

describe('isolation between accounts', () => {
  it("another account's executions, artifacts, logs, batches and webhooks answer 404, for reads and writes", async () => {
    const c = bob.client;
    const own = await submit(c, { script: 'print("bob")\n' });
    await waitFinal(c, own.id);
    const cases: [string, string, string, unknown?][] = [
      ['GET', `/api/v1/executions/${a.exec}`, 'read execution'],
      ['GET', `/api/v1/executions/${a.exec}/artifacts`, 'list artifacts'],
      ['GET', `/api/v1/executions/${a.exec}/artifacts/${a.artifact}`, 'read artifact'],
      ['GET', `/api/v1/executions/${own.id}/artifacts/${a.artifact}`, "read alice's artifact through bob's execution"],
      ['GET', `/api/v1/executions/${a.exec}/logs`, 'read logs'],
      ['POST', `/api/v1/executions/${a.exec}/submit`, 'submit'],
      ['POST', `/api/v1/executions/${a.exec}/cancel`, 'cancel'],
      ['POST', '/api/v1/executions/retry', 'retry an execution', { executionIds: [a.exec] }],
      ['GET', `/api/v1/batches/${a.batch}`, 'read batch'],
      ['GET', `/api/v1/batches/${a.batch}/items`, 'list batch items'],
      ['POST', `/api/v1/batches/${a.batch}/items`, 'append to batch', { items: [{ inputName: 'z' }] }],
      ['POST', `/api/v1/batches/${a.batch}/submit`, 'submit batch'],
      ['POST', `/api/v1/batches/${a.batch}/cancel`, 'cancel batch'],
      ['POST', '/api/v1/executions/retry', 'retry a batch', { batchId: a.batch }],
      ['DELETE', `/api/v1/webhooks/${a.hook}`, 'delete webhook'],
    ];
    for (const [method, path, what, body] of cases) await expectStatus('bob', what, c.call(method, path, body === undefined ? {} : { body }), 404, 'not_found');
    await expectStatus('bob', 'watch batch (WebSocket)', websocketUpgrade(`/api/v1/batches/${a.batch}/watch`, bob.apiKey), 404, 'not_found');
    // Lists never show another account's things.
    expect((await c.ok('GET', `/api/v1/executions?batch=${a.batch}`)).executions).toEqual([]);
    expect((await c.ok('GET', '/api/v1/executions?limit=200')).executions.map((e: { id: string }) => e.id)).toEqual([own.id]);
    expect((await c.ok('GET', '/api/v1/batches')).batches).toEqual([]);
    expect((await c.ok('GET', '/api/v1/webhooks')).webhooks).toEqual([]);
    // Alice still sees all of it, unchanged.
    expect((await alice.client.ok('GET', `/api/v1/executions/${a.exec}`)).execution.status).toBe('succeeded');
    expect((await alice.client.ok('GET', `/api/v1/batches/${a.batch}`)).batch.status).toBe('finished');
    expect((await alice.client.ok('GET', '/api/v1/webhooks')).webhooks.map((w: { id: string }) => w.id)).toEqual([a.hook]);
  });

  it("another account's blobs and results are never reused: Bob must upload his own copy, and runs his own job", async () => {
    const code = Buffer.from('open("secret.txt", "w").write("alice only")\nprint("alice log")\n');
    const input = Buffer.from('alice input');
    const req = { script: { name: 'main.py', sha256: sha256(code), size: code.length }, inputs: [{ path: 'in.txt', sha256: sha256(input), size: input.length }], reuseResults: true, autoSubmit: true };
    const created = await bob.client.ok('POST', '/api/v1/executions', req);
    // Knowing the sha256 of Alice's files gets Bob nothing: he is asked to upload both.
    expect(created.uploads.map((u: { sha256: string }) => u.sha256).sort()).toEqual([sha256(code), sha256(input)].sort());
    expect(created.execution).toMatchObject({ status: 'created', reusedFrom: null });
    const early = await bob.client.call('POST', `/api/v1/executions/${created.execution.id}/submit`);
    expect(early.status).toBe(409);
    for (const u of created.uploads) await putBlob(u.url, u.sha256 === sha256(code) ? code : input);
    await bob.client.ok('POST', `/api/v1/executions/${created.execution.id}/submit`);
    const done = await waitFinal(bob.client, created.execution.id);
    expect(done).toMatchObject({ status: 'succeeded', reusedFrom: null });
    // Alice's identical request does reuse her own result.
    const mine = await alice.client.ok('POST', '/api/v1/executions', req);
    expect(mine.execution.reusedFrom).toBe(a.exec);
  });
});

describe('credentials', () => {
  it('a revoked key answers 401 everywhere it used to work', async () => {
    const carol = await stack.newAccount('carol');
    expect((await carol.client.call('GET', '/api/v1/whoami')).status).toBe(200);
    await stack.admin('POST', `/api-keys/${carol.keyId}/revoke`);
    for (const [method, path, body] of [
      ['GET', '/api/v1/whoami'],
      ['GET', '/api/v1/executions'],
      ['POST', '/api/v1/executions', { script: { name: 'a.py', sha256: sha256('x'), size: 1 } }],
      ['POST', '/api/v1/batches', { template: { script: { name: 'a.py', sha256: sha256('x'), size: 1 } }, items: [] }],
      ['GET', '/api/v1/webhooks'],
      ['GET', '/api/v1/cache/stats'],
    ] as [string, string, unknown?][]) {
      const r = await expectStatus('revoked key', `${method} ${path}`, carol.client.call(method, path, body === undefined ? {} : { body }), 401, 'unauthorized');
      expect(r.json.error.message).toMatch(/revoked/);
    }
  });

  it('runner tokens, registration tokens, user keys and the admin secret each work only on their own API', async () => {
    const reg = await new Client(stack.url, undefined).ok('POST', '/runner/v1/register', { registrationToken: stack.registrationToken, name: 'cred-test', slots: 1 });
    const as = (token: string | undefined) => new Client(stack.url, token);
    const user = alice.apiKey;
    const runner = reg.runnerToken as string;
    const registration = stack.registrationToken;
    const adminSecret = stack.adminSecret;
    const cases: [string, string | undefined, string, string, unknown?][] = [
      ['runner token', runner, 'GET', '/api/v1/whoami'],
      ['runner token', runner, 'GET', `/api/v1/executions/${a.exec}`],
      ['runner token', runner, 'POST', '/admin/v1/accounts', { name: 'x' }],
      ['registration token', registration, 'GET', '/api/v1/whoami'],
      ['registration token', registration, 'POST', '/runner/v1/claim', { waitSeconds: 0 }],
      ['user key', user, 'POST', '/runner/v1/claim', { waitSeconds: 0 }],
      ['user key', user, 'POST', `/runner/v1/executions/${a.exec}/complete`, { attempt: 1, outcome: 'succeeded' }],
      ['user key', user, 'POST', '/admin/v1/accounts', { name: 'x' }],
      ['admin secret', adminSecret, 'GET', '/api/v1/whoami'],
      ['admin secret', adminSecret, 'POST', '/runner/v1/claim', { waitSeconds: 0 }],
      ['no credential', undefined, 'GET', '/api/v1/whoami'],
      ['no credential', undefined, 'POST', '/runner/v1/claim', { waitSeconds: 0 }],
      ['no credential', undefined, 'POST', '/admin/v1/accounts', { name: 'x' }],
      ['user key with one character changed', user.slice(0, -1) + (user.endsWith('a') ? 'b' : 'a'), 'GET', '/api/v1/whoami'],
    ];
    for (const [who, token, method, path, body] of cases) {
      const r = await expectStatus(who, `${method} ${path}`, as(token).call(method, path, body === undefined ? {} : { body }), 401, 'unauthorized');
      expect(r.json.error.hint, `${who} ${path}`).toBeTruthy();
    }
    // And each does work where it belongs.
    expect((await as(user).call('GET', '/api/v1/whoami')).status).toBe(200);
    expect((await as(runner).call('POST', '/runner/v1/claim', { body: { waitSeconds: 0 } })).status).toBe(200);
    expect((await as(adminSecret).call('POST', '/admin/v1/accounts', { body: { name: 'ok' } })).status).toBe(201);
  });
});

describe('runners', () => {
  it('a runner can only act on the attempt it holds; a runner of another pool sees nothing', async () => {
    // A pool with no real runner, so this test alone claims its jobs.
    await stack.admin('POST', '/pools', { name: 'fence' });
    const token = (await stack.admin('POST', '/pools/fence/registration-tokens', {})).token;
    const register = async (name: string, regToken: string) => new Client(stack.url, (await new Client(stack.url, undefined).ok('POST', '/runner/v1/register', { registrationToken: regToken, name, slots: 1 })).runnerToken);
    const holder = await register('holder', token);
    const rival = await register('rival', token);
    const stranger = await register('stranger', stack.registrationToken); // pool "default"
    const code = Buffer.from(`print("fenced ${Date.now()}")\n`);
    const created = await alice.client.ok('POST', '/api/v1/executions', { script: { name: 'main.py', sha256: sha256(code), size: code.length }, pool: 'fence' });
    for (const u of created.uploads) await putBlob(u.url, code);
    await alice.client.ok('POST', `/api/v1/executions/${created.execution.id}/submit`);
    const id = created.execution.id as string;
    const [job] = (await holder.ok('POST', '/runner/v1/claim', { waitSeconds: 0 })).jobs;
    expect(job).toMatchObject({ executionId: id, attempt: 1 });
    const beat = (c: Client, attempt: number) => c.ok('POST', '/runner/v1/heartbeat', { activeJobs: 1, jobs: [{ executionId: id, attempt }] });
    expect((await beat(holder, 1)).stale).toEqual([]); // acknowledges the claim, as a runner does
    expect((await stranger.ok('POST', '/runner/v1/claim', { waitSeconds: 0 })).jobs).toEqual([]);
    // Heartbeats naming the job: a rival and the holder's wrong attempt learn it is stale; a
    // runner of another pool only learns to stop, nothing of the job's state.
    expect((await beat(rival, 1)).stale).toEqual([{ executionId: id, currentAttempt: 1, status: 'running' }]);
    expect((await beat(holder, 2)).stale).toEqual([{ executionId: id, currentAttempt: 1, status: 'running' }]);
    expect((await beat(stranger, 1)).stale).toEqual([{ executionId: id, currentAttempt: 0, status: 'failed' }]);

    const out = Buffer.from('fenced output');
    const file = { path: 'o.txt', sha256: sha256(out), size: out.length };
    const big = { sha256: sha256('big'), size: 6 * 1024 * 1024, storedSize: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024 };
    const mp = await holder.ok('POST', `/runner/v1/executions/${id}/uploads/multipart`, { attempt: 1, ...big });
    const calls = (attempt: number): [string, string, unknown][] => [
      ['logs', `/runner/v1/executions/${id}/logs`, { attempt, chunks: [{ seq: 0, stream: 'stdout', data: 'forged' }] }],
      ['presign outputs', `/runner/v1/executions/${id}/outputs/presign`, { attempt, files: [file] }],
      ['multipart create', `/runner/v1/executions/${id}/uploads/multipart`, { attempt, ...big }],
      ['multipart abort of the holder’s upload', `/runner/v1/executions/${id}/uploads/multipart/abort`, { attempt, sha256: big.sha256, uploadId: mp.uploadId }],
      ['release', `/runner/v1/executions/${id}/release`, { attempt }],
      ['complete', `/runner/v1/executions/${id}/complete`, { attempt, outcome: 'failed', failureKind: 'script_error', exitCode: 66 }],
    ];
    for (const [what, path, body] of calls(1)) await expectStatus('rival runner, same pool', what, rival.call('POST', path, { body }), 409, 'stale_attempt');
    for (const [what, path, body] of calls(1)) await expectStatus('runner of another pool', what, stranger.call('POST', path, { body }), 404, 'not_found');
    for (const [what, path, body] of calls(2)) await expectStatus('holder, wrong attempt', what, holder.call('POST', path, { body }), 409, 'stale_attempt');
    // The holder's multipart upload survived all of that: its part URL still takes bytes.
    const part = await fetch(mp.parts[0].url, { method: 'PUT', body: new Uint8Array(5 * 1024 * 1024) });
    expect(part.status).toBe(200);
    await holder.ok('POST', `/runner/v1/executions/${id}/uploads/multipart/abort`, { attempt: 1, sha256: big.sha256, uploadId: mp.uploadId });

    const pre = await holder.ok('POST', `/runner/v1/executions/${id}/outputs/presign`, { attempt: 1, files: [file] });
    for (const u of pre.uploads) await putBlob(u.url, out);
    const done = await holder.ok('POST', `/runner/v1/executions/${id}/complete`, { attempt: 1, outcome: 'succeeded', exitCode: 0, outputs: [file] });
    expect(done).toEqual({ status: 'succeeded', duplicate: false });
    expect(await holder.ok('POST', `/runner/v1/executions/${id}/complete`, { attempt: 1, outcome: 'succeeded', exitCode: 0, outputs: [file] })).toEqual({ status: 'succeeded', duplicate: true });
    await expectStatus('rival runner after the finish', 'complete', rival.call('POST', `/runner/v1/executions/${id}/complete`, { body: { attempt: 1, outcome: 'failed', failureKind: 'script_error' } }), 409, 'stale_attempt');
    const final = (await alice.client.ok('GET', `/api/v1/executions/${id}`)).execution;
    expect(final).toMatchObject({ status: 'succeeded', exitCode: 0, attempt: 1 });
    expect((await outputs(alice.client, id)).map((o) => o.path)).toEqual(['o.txt']);
    expect(await logsText(alice.client, id)).not.toContain('forged');
  });
});

describe('the container sandbox', () => {
  it('writes to host paths, the network, privileged operations and the runner’s secrets are all out of reach', async () => {
    const script = String.raw`
import ctypes, errno, json, os, socket, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
results = {}
def check(name, fn):
    try:
        r = fn()
        results[name] = "ALLOWED" if r is None or r is True or r == 0 else f"refused (returned {r}, {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())})"
    except OSError as e:
        results[name] = "refused " + errno.errorcode.get(e.errno, str(e.errno))
    except Exception as e:
        results[name] = "refused " + type(e).__name__
def write(path, data="x"):
    with open(path, "w") as f: f.write(data)
def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2); s.close()
def raw_socket():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
def packet_socket():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
def read(path):
    with open(path, "rb") as f: f.read(16)
open("mine.txt", "w").write("x")
check("write /etc", lambda: write("/etc/rgrid-escape"))
check("write /usr/local", lambda: write("/usr/local/rgrid-escape"))
check("write /root", lambda: write("/root/rgrid-escape"))
check("write the script (read-only mount)", lambda: write("/opt/rgrid/main.py"))
check("write /proc/sys/kernel/hostname", lambda: write("/proc/sys/kernel/hostname", "escaped"))
check("write /proc/sysrq-trigger", lambda: write("/proc/sysrq-trigger", "h"))
check("write cgroup memory limit", lambda: write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "-1"))
check("read /proc/kcore", lambda: read("/proc/kcore"))
check("read /dev/kmsg", lambda: read("/dev/kmsg"))
check("docker socket present", lambda: True if os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock") else (_ for _ in ()).throw(FileNotFoundError(errno.ENOENT, "absent")))
check("connect to the control plane on host 127.0.0.1", lambda: connect(int(sys.argv[1])))
check("connect to the object store on host 127.0.0.1", lambda: connect(int(sys.argv[2])))
check("raw ICMP socket", raw_socket)
check("packet socket", packet_socket)
check("mount tmpfs", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
check("unshare user namespace", lambda: libc.unshare(0x10000000))
check("unshare mount namespace", lambda: libc.unshare(0x00020000))
check("chown to root", lambda: os.chown("mine.txt", 0, 0))
check("setuid(0)", lambda: os.setuid(0))
check("setgid(0)", lambda: os.setgid(0))
check("chroot", lambda: os.chroot("/tmp"))
check("mknod /dev/mem", lambda: os.mknod("/tmp/mem", 0o600 | 0o020000, os.makedev(1, 1)))
check("su to root (setuid binary)", lambda: subprocess.run(["su", "-c", "id -u", "root"], stdin=subprocess.DEVNULL, capture_output=True, timeout=5).returncode == 0 or (_ for _ in ()).throw(PermissionError(errno.EPERM, "su failed")))
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
facts = {
  "uid": os.getuid(), "gid": os.getgid(),
  "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(), "NoNewPrivs": status["NoNewPrivs"].strip(), "Seccomp": status["Seccomp"].strip(),
  "interfaces": sorted(os.listdir("/sys/class/net")),
  "visible processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
  "rgrid secrets in env": [k for k, v in os.environ.items() if "rgrid_" in v or "RGRID" in k],
  "files in /work": sorted(os.listdir(".")),
}
print(json.dumps({"results": results, "facts": facts}))
`;
    const e = await submit(alice.client, { script, request: { args: [String(stack.cp.port), String(stack.s3.port)] } });
    const final = await waitFinal(alice.client, e.id, 60_000);
    const stdout = await logsText(alice.client, e.id, 'stdout');
    expect(final.status, stdout + (await logsText(alice.client, e.id, 'stderr'))).toBe('succeeded');
    const { results, facts } = JSON.parse(stdout.trim().split('\n').pop()!) as { results: Record<string, string>; facts: Record<string, unknown> };
    await report('container-escape', { results, facts });
    const allowed = Object.entries(results).filter(([, r]) => !r.startsWith('refused'));
    expect(allowed).toEqual([]);
    expect(facts).toMatchObject({ uid: 65534, gid: 65534, CapEff: '0000000000000000', CapBnd: '0000000000000000', NoNewPrivs: '1', Seccomp: '2', interfaces: ['lo'], 'rgrid secrets in env': [] });
    expect(facts['visible processes']).toBeLessThan(5);
    expect(facts['files in /work']).toEqual(['mine.txt']);
    // The host is untouched.
    await expect(import('node:fs/promises').then((fs) => fs.access('/etc/rgrid-escape'))).rejects.toThrow();
  });
});
