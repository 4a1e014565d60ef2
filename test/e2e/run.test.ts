// `rgrid run` end to end: the CLI as a process, the local stack with a real runner on Docker.
// Needs Docker, the base images and the runner agent; fails (never skips) without them.
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RGridClient } from '../../cli/api/client.js';
import { isFinal } from '../../shared/lifecycle.js';
import { runCli, show, spawnCli, workspace, type Workspace } from '../harness/cli.js';
import { startTestStack, type TestStack } from '../harness/stack.js';

let stack: TestStack;
let ws: Workspace;
let client: RGridClient;

const ID = /(exec_[a-z2-7]{24})/;

async function waitFinal(id: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { execution } = await client.get(id);
    if (isFinal(execution.status)) return execution;
    if (Date.now() > deadline) throw new Error(`${id} still ${execution.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function script(name: string, body: string): Promise<void> {
  await writeFile(join(ws.cwd, name), body);
}

beforeAll(async () => {
  stack = await startTestStack({ runners: 1, slots: 4 });
  ws = await workspace(stack);
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey });
  await mkdir(join(ws.cwd, 'data'));
  await mkdir(join(ws.cwd, 'other'));
  await writeFile(join(ws.cwd, 'data', 'a.csv'), 'n\n1\n2\n3\n');
  await writeFile(join(ws.cwd, 'other', 'a.csv'), 'n\n10\n20\n');
  await writeFile(join(ws.root, 'b.csv'), 'n\n100\n');
  await symlink(join(ws.cwd, 'data', 'a.csv'), join(ws.cwd, 'latest.csv'));
  await script(
    'process.py',
    `import json, os, sys
files = [a for a in sys.argv[1:] if a.endswith('.csv')]
totals = {}
for path in files:
    with open(path) as f:
        totals[os.path.basename(path)] = sum(int(line) for line in f.read().split()[1:])
with open('result.csv', 'w') as f:
    f.write('file,total\\n' + ''.join(f'{k},{v}\\n' for k, v in totals.items()))
os.makedirs('report/deep', exist_ok=True)
with open('report/deep/details.json', 'w') as f:
    json.dump({'argv': sys.argv[1:], 'greeting': os.environ.get('GREETING')}, f)
print('totals', json.dumps(totals, sort_keys=True))
print('a line for stderr', file=sys.stderr)
`,
  );
  await script('exit3.py', 'import sys\nprint("about to fail")\nsys.exit(3)\n');
  await script('ticker.py', 'import sys, time\nfor i in range(6):\n    print(f"tick {i}", flush=True)\n    print(f"err {i}", file=sys.stderr, flush=True)\n    time.sleep(0.5)\nopen("done.txt", "w").write("done")\n');
  await script('write.py', 'open("out.txt", "w").write("fresh")\n');
}, 180_000);

afterAll(async () => {
  await ws?.cleanup();
  await stack?.cleanup();
});

describe('rgrid run with a runner', () => {
  it('uploads inputs (relative, absolute, symlinked, same-named), streams stdout/stderr apart, downloads outputs with subdirectories', async () => {
    const args = ['run', 'process.py', 'data/a.csv', join(ws.root, 'b.csv'), 'latest.csv', 'other/a.csv', 'fast', '--env', 'GREETING=hi', '--metadata', 'suite=e2e'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(0);
    expect(r.stdout).toContain('totals {"a (1).csv": 30, "a.csv": 6, "b.csv": 100, "latest.csv": 6}');
    expect(r.stdout).not.toContain('a line for stderr');
    expect(r.stderr).toContain('a line for stderr');
    expect(r.stderr).toMatch(/Succeeded in/);
    expect(await readFile(join(ws.cwd, 'result.csv'), 'utf8')).toBe('file,total\na.csv,6\nb.csv,100\nlatest.csv,6\na (1).csv,30\n');
    const details = JSON.parse(await readFile(join(ws.cwd, 'report', 'deep', 'details.json'), 'utf8'));
    // Input arguments were rewritten to the files' places in the job; the plain word was not.
    expect(details.argv.map((a: string) => a.split('/').pop())).toEqual(['a.csv', 'b.csv', 'latest.csv', 'a (1).csv', 'fast']);
    expect(details.argv[4]).toBe('fast');
    expect(details.greeting).toBe('hi');
  });

  it("exits with the script's exit code, and with 124 when the script times out", async () => {
    const r = await runCli(['run', 'exit3.py'], ws);
    expect(r.code, show(['run', 'exit3.py'], r)).toBe(3);
    expect(r.stdout).toContain('about to fail');
    expect(r.stderr).toMatch(/Failed: Script exited with code 3/);

    await script('sleepy.py', 'import time\nprint("sleeping", flush=True)\ntime.sleep(60)\n');
    const t = await runCli(['run', 'sleepy.py', '--timeout', '2s'], ws);
    expect(t.code, show(['run', 'sleepy.py'], t)).toBe(124);
    expect(t.stderr).toMatch(/ran past its timeout/);
  });

  it('a requirement that cannot be installed ends as a build failure: exit 78 with the reason', async () => {
    const dir = join(ws.cwd, 'needs-deps');
    await mkdir(dir);
    await writeFile(join(dir, 'uses_it.py'), 'import rgrid_no_such_package\n');
    await writeFile(join(dir, 'requirements.txt'), '# not on any index\nrgrid-no-such-package==1.0\n');
    const r = await runCli(['run', 'needs-deps/uses_it.py'], ws);
    expect(r.code, show(['run', 'needs-deps/uses_it.py'], r)).toBe(78);
    expect(r.stderr).toMatch(/Detected requirements\.txt with 1 dependency/);
    expect(r.stderr).toMatch(/Failed: The environment could not be built/);
  });

  it('never overwrites: a second run writes out (1).txt', async () => {
    const dir = join(ws.cwd, 'conflicts');
    expect((await runCli(['run', 'write.py', '--output-dir', dir], ws)).code).toBe(0);
    await writeFile(join(dir, 'out.txt'), 'my edits');
    const second = await runCli(['run', 'write.py', '--output-dir', dir], ws);
    expect(second.code, show(['run', 'write.py'], second)).toBe(0);
    expect(second.stderr).toMatch(/out \(1\)\.txt {2}\(out\.txt already existed; not overwritten\)/);
    expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('my edits');
    expect(await readFile(join(dir, 'out (1).txt'), 'utf8')).toBe('fresh');
  });

  it('outputs identical to an input, to the script, or to each other download intact (the artifact records how the blob is stored)', async () => {
    const dir = join(ws.cwd, 'copies');
    await mkdir(dir);
    // Text the CLI stores gzip-compressed as an input; the runner, seeing the blob exists, uploads nothing.
    const fasta = Array.from({ length: 300 }, (_, i) => `>seq${i}\nACGTACGTTGCAACGTAGCTAGCTAGGATCCA${i % 7}\n`).join('');
    await writeFile(join(dir, 'data.fasta'), fasta);
    const copy = `import os, shutil, sys
os.makedirs("out", exist_ok=True)
shutil.copy(sys.argv[1], "out/data.fasta")
shutil.copy(__file__, "out/copy-of-script.py")
open("out/same.txt", "w").write("twice\\n" * 500)
open("out/same.log", "w").write("twice\\n" * 500)
`;
    await writeFile(join(dir, 'copy.py'), copy);
    const args = ['run', 'copy.py', 'data.fasta'];
    const r = await runCli(args, { ...ws, cwd: dir });
    expect(r.code, show(args, r)).toBe(0);
    expect(await readFile(join(dir, 'out', 'data.fasta'), 'utf8')).toBe(fasta);
    expect(await readFile(join(dir, 'out', 'copy-of-script.py'), 'utf8')).toBe(copy);
    expect(await readFile(join(dir, 'out', 'same.txt'), 'utf8')).toBe('twice\n'.repeat(500));
    expect(await readFile(join(dir, 'out', 'same.log'), 'utf8')).toBe('twice\n'.repeat(500));
  });

  it('--remote-only keeps outputs remote and says how to get them; download fetches them later', async () => {
    const dir = join(ws.cwd, 'remote-only');
    await mkdir(dir);
    const r = await runCli(['run', join(ws.cwd, 'write.py'), '--remote-only'], { ...ws, cwd: dir });
    expect(r.code, show(['run', '--remote-only'], r)).toBe(0);
    const id = r.stderr.match(/Outputs stored remotely\. Download with: rgrid download (exec_[a-z2-7]{24})/)?.[1];
    expect(id, r.stderr).toBeDefined();
    expect(await readdir(dir)).toEqual([]);
    const dl = await runCli(['download', id!, '--output-dir', 'got'], { ...ws, cwd: dir });
    expect(dl.code, show(['download'], dl)).toBe(0);
    expect(await readFile(join(dir, 'got', 'out.txt'), 'utf8')).toBe('fresh');
  });

  it('--json prints one parseable result on stdout (the script output goes to stderr)', async () => {
    const dir = join(ws.cwd, 'json');
    await mkdir(dir);
    const r = await runCli(['run', join(ws.cwd, 'exit3.py'), '--json'], { ...ws, cwd: dir });
    expect(r.code).toBe(3);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ exitCode: 3, remoteOnly: false, execution: { status: 'failed', failureKind: 'script_error', exitCode: 3 } });
    expect(r.stderr).toContain('about to fail');
  });

  it('logs -f follows a running execution to its end; --stdout filters', async () => {
    const run = spawnCli(['run', 'ticker.py', '--remote-only'], ws);
    const [, id] = await run.waitFor(new RegExp(`${ID.source} submitted`));
    await run.waitFor(/tick 0/, 'stdout'); // streamed live, before the script ends
    const follow = spawnCli(['logs', id!, '-f'], ws);
    await follow.waitFor(/tick 1/, 'stdout');
    const f = await follow.done;
    expect(f.code, show(['logs', '-f'], f)).toBe(0);
    expect(f.stdout).toMatch(/tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\n$/);
    expect(f.stderr).toContain('err 5');
    expect((await run.done).code).toBe(0);
    const only = await runCli(['logs', id!, '--stdout'], ws);
    expect(only.stdout).toBe('tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\n');
    expect(only.stderr).not.toContain('err 0');
  });

  it('Ctrl+C detaches: the execution keeps running, succeeds, and its outputs can be downloaded', async () => {
    const dir = join(ws.cwd, 'detach');
    await mkdir(dir);
    const run = spawnCli(['run', join(ws.cwd, 'ticker.py')], { ...ws, cwd: dir });
    const [, id] = await run.waitFor(new RegExp(`${ID.source} submitted`));
    await run.waitFor(/tick 1/, 'stdout');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, show(['run'], r)).toBe(130);
    expect(r.stderr).toMatch(new RegExp(`Detached\\. ${id} keeps running \\(Ctrl\\+C does not cancel it\\)`));
    expect(r.stderr).toContain(`rgrid logs ${id} -f`);
    expect(r.stderr).toContain(`rgrid status ${id}`);
    const final = await waitFinal(id!);
    expect(final.status).toBe('succeeded');
    expect(await readdir(dir)).toEqual([]); // nothing downloaded by the detached CLI
    const dl = await runCli(['download', id!], { ...ws, cwd: dir });
    expect(dl.code, show(['download'], dl)).toBe(0);
    expect(await readFile(join(dir, 'done.txt'), 'utf8')).toBe('done');
  });
});
