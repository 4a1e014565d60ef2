/**
 * Cache bookkeeping and explanations. Keys come from shared/hashing.ts; this module records hits
 * and misses per kind (script, env, input, result) in D1 and explains a miss in words.
 */
import { and, desc, eq, inArray, ne, sql } from 'drizzle-orm';
import { envKey as envKeyOf, resultKey as resultKeyOf, scriptKey as scriptKeyOf } from '../../../shared/hashing.js';
import { RUNTIMES, type RuntimeName } from '../../../shared/limits.js';
import { normalizeRequirements } from '../../../shared/requirements.js';
import type { CacheReport, CacheStatsResponse } from '../../../shared/api/cache.js';
import { schema, type Db } from '../db/client.js';
import { chunk, knownBlobs } from '../executions/blobs.js';

type Kind = 'script' | 'env' | 'input' | 'result';

export interface CacheSubject {
  runtime: RuntimeName;
  script: { name: string; sha256: string };
  requirements: string | null;
  inputs: { path: string; sha256: string; size: number }[];
  args: string[];
  env: Record<string, string>;
}

/** Upserts counters: one statement per record, batched. */
export async function count(db: Db, accountId: string, entries: { kind: Kind; key: string; hit: boolean; detail?: Record<string, unknown> }[]): Promise<void> {
  if (!entries.length) return;
  const t = schema.cacheRecords;
  const now = Date.now();
  const statements = entries.map((e) =>
    db
      .insert(t)
      .values({ accountId, kind: e.kind, key: e.key, detail: e.detail ?? {}, hits: e.hit ? 1 : 0, misses: e.hit ? 0 : 1, createdAt: now, lastUsedAt: now })
      .onConflictDoUpdate({
        target: [t.accountId, t.kind, t.key],
        set: {
          hits: sql`${t.hits} + ${e.hit ? 1 : 0}`,
          misses: sql`${t.misses} + ${e.hit ? 0 : 1}`,
          lastUsedAt: now,
          ...(e.detail ? { detail: sql`json_patch(${t.detail}, ${JSON.stringify(e.detail)})` } : {}),
        },
      }),
  );
  for (const part of chunk(statements, 50)) await db.batch(part as [(typeof part)[number], ...typeof part]);
}

async function record(db: Db, accountId: string, kind: Kind, key: string) {
  return db
    .select()
    .from(schema.cacheRecords)
    .where(and(eq(schema.cacheRecords.accountId, accountId), eq(schema.cacheRecords.kind, kind), eq(schema.cacheRecords.key, key)))
    .get();
}

/** What would be reused for this execution, and why not where it would not. Reads only. */
export async function assess(db: Db, accountId: string, s: CacheSubject, now: number): Promise<CacheReport & { reusable: string | null }> {
  const baseImage = RUNTIMES[s.runtime].image;
  const sKey = await scriptKeyOf(s.runtime, s.script.sha256);
  const eKey = await envKeyOf(s.runtime, baseImage, s.requirements ?? '');
  const rKey = await resultKeyOf(sKey, eKey, s.args, s.env, s.inputs);
  const normalized = normalizeRequirements(s.requirements ?? '');
  const packages = normalized ? normalized.split('\n').length : 0;

  const scriptRec = await record(db, accountId, 'script', sKey);
  const envRec = await record(db, accountId, 'env', eKey);
  const builtAt = (envRec?.detail as { builtAt?: number } | undefined)?.builtAt ?? null;
  let reason: string | null = null;
  let added: string[] = [];
  let removed: string[] = [];
  if (!builtAt) {
    const e = schema.executions;
    const prev = await db
      .select({ requirements: e.requirements, runtime: e.runtime })
      .from(e)
      .where(and(eq(e.accountId, accountId), eq(e.scriptName, s.script.name), ne(e.envKey, eKey)))
      .orderBy(desc(e.createdAt))
      .limit(1)
      .get();
    if (!prev) reason = packages ? `first build of these ${packages} requirement${packages === 1 ? '' : 's'}` : `first run of runtime ${s.runtime}`;
    else if (prev.runtime !== s.runtime) reason = `runtime changed since last build (${prev.runtime} → ${s.runtime})`;
    else {
      const before = new Set(normalizeRequirements(prev.requirements ?? '').split('\n').filter(Boolean));
      const after = new Set(normalized.split('\n').filter(Boolean));
      added = [...after].filter((x) => !before.has(x));
      removed = [...before].filter((x) => !after.has(x));
      const diff = [...added.map((x) => `+${x}`), ...removed.map((x) => `-${x}`)].join(', ');
      reason = diff ? `requirements changed since last build (${diff})` : `base image changed since last build (${baseImage})`;
    }
  }

  const shas = [...new Set(s.inputs.map((i) => i.sha256))];
  const have = await knownBlobs(db, accountId, shas);
  const sizes = new Map(s.inputs.map((i) => [i.sha256, i.size]));
  let bytesHit = 0;
  let bytesTotal = 0;
  for (const sha of shas) {
    bytesTotal += sizes.get(sha) ?? 0;
    if (have.has(sha)) bytesHit += sizes.get(sha) ?? 0;
  }

  const reusable = await reusableResult(db, accountId, rKey, now);
  return {
    script: { key: sKey, hit: !!scriptRec, reason: scriptRec ? null : 'script content not seen before' },
    env: { key: eKey, hit: !!builtAt, runtime: s.runtime, packages, builtAt: builtAt ? new Date(builtAt).toISOString() : null, reason, added, removed },
    inputs: { hit: shas.filter((x) => have.has(x)).length, total: shas.length, bytesHit, bytesTotal },
    result: { key: rKey, reusedFrom: reusable },
    reusable,
  };
}

/**
 * For each result key, a succeeded execution with that key whose outputs are all still stored
 * (bulk: a few IN queries however many keys, so a 1,000-item batch stays cheap).
 */
export async function reusableResults(db: Db, accountId: string, keys: string[], now: number): Promise<Map<string, string>> {
  const t = schema.cacheRecords;
  const candidates = new Map<string, string>();
  for (const part of chunk([...new Set(keys)])) {
    const rows = await db.select({ key: t.key, detail: t.detail }).from(t).where(and(eq(t.accountId, accountId), eq(t.kind, 'result'), inArray(t.key, part))).all();
    for (const r of rows) {
      const id = (r.detail as { executionId?: string }).executionId;
      if (id) candidates.set(r.key, id);
    }
  }
  const ids = [...new Set(candidates.values())];
  const good = new Set<string>();
  const a = schema.artifacts;
  for (const part of chunk(ids)) {
    const ok = await db.select({ id: schema.executions.id }).from(schema.executions).where(and(eq(schema.executions.accountId, accountId), eq(schema.executions.status, 'succeeded'), inArray(schema.executions.id, part))).all();
    const gone = await db
      .select({ id: a.executionId })
      .from(a)
      .where(and(inArray(a.executionId, part), eq(a.kind, 'output'), sql`(${a.deletedAt} IS NOT NULL OR ${a.expiresAt} <= ${now})`))
      .all();
    const goneIds = new Set(gone.map((g) => g.id));
    for (const o of ok) if (!goneIds.has(o.id)) good.add(o.id);
  }
  return new Map([...candidates].filter(([, id]) => good.has(id)));
}

async function reusableResult(db: Db, accountId: string, rKey: string, now: number): Promise<string | null> {
  return (await reusableResults(db, accountId, [rKey], now)).get(rKey) ?? null;
}

/** Counts what create-time assessment saw (script and inputs; results when reuse was asked). */
export async function recordAssessment(db: Db, accountId: string, r: CacheReport, inputShas: string[], have: Set<string>, reuseAsked: boolean) {
  await count(db, accountId, [
    { kind: 'script', key: r.script.key, hit: r.script.hit },
    ...[...new Set(inputShas)].map((sha) => ({ kind: 'input' as const, key: sha, hit: have.has(sha) })),
    ...(reuseAsked ? [{ kind: 'result' as const, key: r.result.key, hit: r.result.reusedFrom !== null }] : []),
  ]);
  console.log(JSON.stringify({ event: 'cache', account: accountId, script: [r.script.key, r.script.hit], env: [r.env.key, r.env.hit], inputs: [r.inputs.hit, r.inputs.total], result: reuseAsked ? [r.result.key, r.result.reusedFrom] : undefined }));
}

/** At completion: the runner's actual environment hit or build, and (on success) the result for reuse. */
export async function recordCompletion(
  db: Db,
  row: { accountId: string; id: string; envKey: string; runtime: string; requirements: string | null; scriptKey: string; args: string[]; env: Record<string, string>; inputs: unknown },
  status: string,
  envHit: boolean | null,
  runnerId: string,
  now: number,
) {
  const entries: Parameters<typeof count>[2] = [];
  if (envHit !== null) {
    const prev = await record(db, row.accountId, 'env', row.envKey);
    const detail: Record<string, unknown> = { runtime: row.runtime, requirements: normalizeRequirements(row.requirements ?? '') };
    if (!(prev?.detail as { builtAt?: number } | undefined)?.builtAt) detail.builtAt = now;
    entries.push({ kind: 'env', key: row.envKey, hit: envHit, detail });
    await db.insert(schema.runnerImages).values({ runnerId, envKey: row.envKey, builtAt: now }).onConflictDoNothing();
  }
  if (entries.length) await count(db, row.accountId, entries);
  if (status === 'succeeded') {
    const key = await resultKeyOf(row.scriptKey, row.envKey, row.args, row.env, row.inputs as { path: string; sha256: string }[]);
    const t = schema.cacheRecords;
    await db
      .insert(t)
      .values({ accountId: row.accountId, kind: 'result', key, detail: { executionId: row.id }, createdAt: now, lastUsedAt: now })
      .onConflictDoUpdate({ target: [t.accountId, t.kind, t.key], set: { detail: { executionId: row.id }, lastUsedAt: now } });
  }
}

export async function stats(db: Db, accountId: string): Promise<CacheStatsResponse> {
  const t = schema.cacheRecords;
  const rows = await db
    .select({ kind: t.kind, hits: sql<number>`SUM(${t.hits})`, misses: sql<number>`SUM(${t.misses})` })
    .from(t)
    .where(eq(t.accountId, accountId))
    .groupBy(t.kind)
    .all();
  const of = (kind: Kind) => {
    const r = rows.find((x) => x.kind === kind);
    const hits = r?.hits ?? 0;
    const misses = r?.misses ?? 0;
    return { hits, misses, hitRate: hits + misses ? hits / (hits + misses) : null };
  };
  return { script: of('script'), env: of('env'), input: of('input'), result: of('result') };
}

