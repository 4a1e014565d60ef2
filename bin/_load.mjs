// Loads a TypeScript entry point of this package fast. The first start bundles it with esbuild
// (our sources only; packages stay external) into node_modules/.cache/rgrid/ and records every
// source file it read with its size and mtime; later starts check those (a few ms of stat calls)
// and import the bundle, which skips compiling ~150 files on every start (tsx: ~1 s of CPU per
// process). Any change to a source file rebuilds the bundle. Should anything go wrong (no esbuild,
// a read-only install), the entry point is run through tsx as before.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'rgrid');
const FORMAT = 1;

/** @param {string} entry path of the entry point relative to the package root; @param {string} name */
export async function loadEntry(entry, name) {
  if (process.env.RGRID_NO_BUNDLE !== '1') {
    try {
      const bundle = (await fresh(name)) ?? (await build(entry, name));
      return await import(pathToFileURL(bundle).href);
    } catch (err) {
      if (process.env.RGRID_DEBUG_BUNDLE) process.stderr.write(`rgrid: running from source (${err?.message ?? err})\n`);
    }
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import(pathToFileURL(join(ROOT, entry)).href);
}

/** The bundle's path when every file it was built from is unchanged, else undefined. */
async function fresh(name) {
  let manifest;
  try {
    manifest = JSON.parse(await readFile(join(CACHE, `${name}.json`), 'utf8'));
  } catch {
    return undefined;
  }
  if (manifest.format !== FORMAT || manifest.node !== process.version) return undefined;
  const checks = await Promise.all(
    Object.entries(manifest.inputs).map(async ([file, [size, mtimeMs]]) => {
      const s = await stat(join(ROOT, file)).catch(() => undefined);
      return s !== undefined && s.size === size && s.mtimeMs === mtimeMs;
    }),
  );
  return checks.every(Boolean) ? join(CACHE, manifest.bundle) : undefined;
}

async function build(entry, name) {
  const esbuild = await import('esbuild');
  const inputs = new Set();
  // Each module keeps its own import.meta.url (paths.ts, version.ts and the local control plane
  // find the package's files relative to themselves), as if it ran from source.
  const metaUrl = {
    name: 'rgrid-import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(`${join('node_modules', '')}`)) return undefined;
        inputs.add(args.path);
        const text = await readFile(args.path, 'utf8');
        return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
      });
    },
  };
  const id = randomBytes(6).toString('hex');
  // A directory of chunks: each command's code (and the packages it imports) loads only when that
  // command runs, as with the sources (cli/main.ts imports commands lazily).
  const dir = `${name}-${id}`;
  const bundle = join(dir, 'main.mjs');
  await mkdir(CACHE, { recursive: true });
  await esbuild.build({
    entryPoints: { main: join(ROOT, entry) },
    outdir: join(CACHE, dir),
    outExtension: { '.js': '.mjs' },
    splitting: true,
    chunkNames: '[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    plugins: [metaUrl],
    logLevel: 'silent',
  });
  const entries = await Promise.all(
    [...inputs].map(async (file) => {
      const s = await stat(file);
      return [relative(ROOT, file), [s.size, s.mtimeMs]];
    }),
  );
  const manifest = { format: FORMAT, node: process.version, bundle, inputs: Object.fromEntries(entries) };
  const tmp = join(CACHE, `.${name}-${id}.json`);
  await writeFile(tmp, JSON.stringify(manifest));
  await rename(tmp, join(CACHE, `${name}.json`));
  // Bundles of this entry point older than a day. Not younger ones: a process started from one
  // (`rgrid dev`, a runner) may still import its chunks.
  for (const f of await readdir(CACHE).catch(() => [])) {
    if (!f.startsWith(`${name}-`) || f === dir || f.endsWith('.json')) continue;
    const s = await stat(join(CACHE, f)).catch(() => undefined);
    if (s && Date.now() - s.mtimeMs > 86_400_000) await rm(join(CACHE, f), { recursive: true, force: true }).catch(() => undefined);
  }
  return join(CACHE, bundle);
}
