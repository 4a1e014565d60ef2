// Measures the dev store's memory while a large object goes through it: one presigned PUT and one
// presigned GET of SIZE_MB (default 1024) MiB, content checked by sha256. The store runs in a
// forked child (same runtime flags as this process), so the RSS printed is the store's alone; its
// baseline before any transfer is printed too, because the growth is what a transfer costs and it
// must not depend on SIZE_MB. Not a test: it writes SIZE_MB to disk and takes a while.
//
//   npx tsx cli/dev/s3/measure-rss.ts             # 1 GiB
//   SIZE_MB=3072 npx tsx cli/dev/s3/measure-rss.ts
import { AwsClient } from 'aws4fetch';
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { startS3Store } from '../s3-store.js';

const MiB = 1024 * 1024;
const CREDS = { accessKeyId: 'ak', secretAccessKey: 'sk' };

type FromChild = { port: number; baseline: number } | { peak: number };

/** Child: run the store, sample RSS, report the peak when asked. */
async function storeChild(dataDir: string): Promise<void> {
  const store = await startS3Store({ dataDir, bucket: 'rss', ...CREDS });
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  process.send?.({ port: store.port, baseline } satisfies FromChild);
  process.once('message', async () => {
    clearInterval(sampler);
    await store.close();
    process.send?.({ peak } satisfies FromChild, () => process.exit(0));
  });
}

async function main(): Promise<void> {
  const sizeMb = Number(process.env.SIZE_MB ?? 1024);
  const dataDir = await mkdtemp(join(tmpdir(), 'rgrid-s3-rss-'));
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, RSS_STORE_DIR: dataDir } });
  const next = () => new Promise<FromChild>((resolve) => child.once('message', (m) => resolve(m as FromChild)));
  try {
    const started = await next();
    if (!('port' in started)) throw new Error('store child did not start');
    const client = new AwsClient({ ...CREDS, service: 's3', region: 'us-east-1' });
    const url = `http://127.0.0.1:${started.port}/rss/big.bin?X-Amz-Expires=3600`;

    // The body: one random MiB repeated, generated lazily (never the whole object in memory).
    const block = randomBytes(MiB);
    const sent = createHash('sha256');
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < sizeMb; i++) {
          sent.update(block);
          yield block;
        }
      })(),
    );
    let t = Date.now();
    const put = await request((await client.sign(url, { method: 'PUT', aws: { signQuery: true } })).url, {
      method: 'PUT',
      body,
      headers: { 'content-length': String(sizeMb * MiB) },
    });
    await put.body.dump();
    if (put.statusCode !== 200) throw new Error(`PUT answered ${put.statusCode}`);
    const putS = (Date.now() - t) / 1000;

    t = Date.now();
    const get = await request((await client.sign(url, { method: 'GET', aws: { signQuery: true } })).url);
    const received = createHash('sha256');
    for await (const chunk of get.body) received.update(chunk as Buffer);
    const getS = (Date.now() - t) / 1000;
    if (received.digest('hex') !== sent.digest('hex')) throw new Error('GET returned different bytes');

    const reply = next();
    child.send('report');
    const done = await reply;
    if (!('peak' in done)) throw new Error('store child did not report');
    console.log(
      `${sizeMb} MiB: PUT ${putS.toFixed(1)} s, GET ${getS.toFixed(1)} s, sha256 equal; store RSS baseline ` +
        `${(started.baseline / MiB).toFixed(0)} MiB, peak ${(done.peak / MiB).toFixed(0)} MiB (sampled every 20 ms)`,
    );
  } finally {
    child.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (process.env.RSS_STORE_DIR) await storeChild(process.env.RSS_STORE_DIR);
else await main();
