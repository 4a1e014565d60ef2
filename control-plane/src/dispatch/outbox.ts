/**
 * The Dispatcher's outbox, as D1 sees it: each transition of a live execution is written to the
 * Dispatcher's own SQLite together with an outbox entry, and a flusher turns a run of entries into
 * one D1 batch (one round trip, one transaction).
 *
 * Every statement is idempotent and guarded by the execution's version (the Dispatcher's
 * per-execution transition counter), so a flush that is repeated (the object restarted after D1
 * committed but before the entries were deleted), late, or reordered can never move a row
 * backwards, insert an artifact twice or count a cache hit twice. Rows travel as one JSON
 * parameter per statement (json_each), which keeps D1 well under its bound-parameter limit however
 * many executions a flush carries.
 */
import type { ItemUpdate } from '../batches/types.js';
import type { CompletionFile, ExecSnapshot } from './types.js';

/** An artifact row as D1 stores it: a completion's file, plus where and until when it is kept. */
export interface ArtifactRow extends CompletionFile {
  id: string;
  accountId: string;
  executionId: string;
  attempt: number;
  objectKey: string;
  createdAt: number;
  expiresAt: number;
}

/** Cache bookkeeping of a finished execution (counted once, with its final transition). */
export interface CacheNote {
  accountId: string;
  runnerId: string | null;
  envKey: string;
  envHit: boolean | null;
  runtime: string;
  requirements: string;
  /** Set when the execution succeeded: later identical executions may reuse its outputs. */
  resultKey: string | null;
}

export interface OutboxEntry {
  exec: ExecSnapshot;
  batchId: string | null;
  /** When the transition happened (what the batch tracker shows). */
  at: number;
  artifacts?: ArtifactRow[];
  cache?: CacheNote;
}

export interface RunnerLiveness {
  id: string;
  lastSeen: number;
  activeJobs: number;
  draining: boolean;
}

/** JSON rows per statement: far below D1's 100 KB statement and 2 MB value limits. */
const ROWS_PER_STATEMENT = 200;

function chunks<T>(xs: T[], n = ROWS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

const col = (name: string) => `json_extract(value, '$.${name}')`;

const UPDATE_EXECUTIONS = `
UPDATE executions SET
  status = j.status, attempt = j.attempt, runner_id = j.runner_id, version = j.version,
  submitted_at = COALESCE(j.submitted_at, executions.submitted_at), started_at = COALESCE(j.started_at, executions.started_at),
  finished_at = j.finished_at, failure_kind = j.failure_kind, exit_code = j.exit_code, message = j.message,
  env_hit = j.env_hit, build_seconds = j.build_seconds, duration_ms = j.duration_ms
FROM (SELECT ${['id', 'version', 'status', 'attempt', 'runnerId', 'submittedAt', 'startedAt', 'finishedAt', 'failureKind', 'exitCode', 'message', 'envHit', 'buildSeconds', 'durationMs']
  .map((c) => `${col(c)} AS ${c.replace(/[A-Z]/g, (m) => '_' + m.toLowerCase())}`)
  .join(', ')} FROM json_each(?1)) AS j
WHERE executions.id = j.id AND executions.version < j.version`;

const INSERT_ARTIFACTS = `
INSERT OR IGNORE INTO artifacts (id, account_id, execution_id, attempt, kind, path, size, sha256, content_type, encoding, object_key, created_at, expires_at)
SELECT ${['id', 'accountId', 'executionId', 'attempt', 'kind', 'path', 'size', 'sha256', 'contentType', 'encoding', 'objectKey', 'createdAt', 'expiresAt'].map(col).join(', ')}
FROM json_each(?1)`;

/** Counted only while the execution's row has not reached this version: the first flush counts. */
const FIRST_TIME = `EXISTS (SELECT 1 FROM executions e WHERE e.id = ${col('exec')} AND e.version < ${col('version')})`;

const UPSERT_ENV_RECORDS = `
INSERT INTO cache_records (account_id, kind, key, detail, hits, misses, created_at, last_used_at)
SELECT ${col('accountId')}, 'env', ${col('envKey')},
  json_object('runtime', ${col('runtime')}, 'requirements', ${col('requirements')}, 'builtAt', ${col('at')}),
  ${col('hit')}, 1 - ${col('hit')}, ${col('at')}, ${col('at')}
FROM json_each(?1) WHERE ${FIRST_TIME}
ON CONFLICT (account_id, kind, key) DO UPDATE SET
  hits = cache_records.hits + excluded.hits, misses = cache_records.misses + excluded.misses,
  last_used_at = excluded.last_used_at, detail = json_patch(excluded.detail, cache_records.detail)`;

const INSERT_RUNNER_IMAGES = `
INSERT OR IGNORE INTO runner_images (runner_id, env_key, built_at)
SELECT ${col('runnerId')}, ${col('envKey')}, ${col('at')} FROM json_each(?1) WHERE ${col('runnerId')} IS NOT NULL`;

const UPSERT_RESULT_RECORDS = `
INSERT INTO cache_records (account_id, kind, key, detail, hits, misses, created_at, last_used_at)
SELECT ${col('accountId')}, 'result', ${col('resultKey')}, json_object('executionId', ${col('exec')}), 0, 0, ${col('at')}, ${col('at')}
FROM json_each(?1) WHERE ${FIRST_TIME}
ON CONFLICT (account_id, kind, key) DO UPDATE SET detail = excluded.detail, last_used_at = excluded.last_used_at`;

const UPDATE_RUNNERS = `
UPDATE runners SET last_seen_at = j.seen, active_jobs = j.active, draining = j.draining
FROM (SELECT ${col('id')} AS id, ${col('lastSeen')} AS seen, ${col('activeJobs')} AS active, ${col('draining')} AS draining FROM json_each(?1)) AS j
WHERE runners.id = j.id AND runners.last_seen_at <= j.seen
RETURNING runners.id AS id, runners.drain_requested AS drain`;

/**
 * The statements of one flush, in the order they must run: cache counters first (their guard reads
 * the execution's version before the update below raises it), then artifacts (an execution that
 * reads as final has its artifacts in the same transaction), then executions, then runners (whose
 * RETURNING rows tell the Dispatcher which runners an operator asked to drain).
 */
export function flushStatements(db: D1Database, entries: OutboxEntry[], runners: RunnerLiveness[]): { statements: D1PreparedStatement[]; runnerStatements: number } {
  const statements: D1PreparedStatement[] = [];
  const stmt = (sql: string, rows: unknown[]) => {
    for (const part of chunks(rows)) statements.push(db.prepare(sql).bind(JSON.stringify(part)));
  };
  const notes = entries.filter((e) => e.cache).map((e) => ({ ...e.cache!, exec: e.exec.id, version: e.exec.version, at: e.at }));
  const envNotes = notes.filter((n) => n.envHit !== null).map((n) => ({ ...n, hit: n.envHit ? 1 : 0 }));
  stmt(UPSERT_ENV_RECORDS, envNotes);
  stmt(INSERT_RUNNER_IMAGES, envNotes);
  stmt(UPSERT_RESULT_RECORDS, notes.filter((n) => n.resultKey));
  stmt(INSERT_ARTIFACTS, entries.flatMap((e) => e.artifacts ?? []));
  // One row per execution: its latest snapshot (the guard would skip the older ones anyway, but
  // an UPDATE … FROM with two source rows for one target row picks either).
  const latest = new Map<string, ExecSnapshot>();
  for (const e of entries) if ((latest.get(e.exec.id)?.version ?? -1) < e.exec.version) latest.set(e.exec.id, e.exec);
  stmt(UPDATE_EXECUTIONS, [...latest.values()]);
  const before = statements.length;
  stmt(UPDATE_RUNNERS, runners.map((r) => ({ ...r, draining: r.draining ? 1 : 0 })));
  return { statements, runnerStatements: statements.length - before };
}

/** The batch tracker's view of a transition. */
export function itemUpdate(e: OutboxEntry): ItemUpdate {
  return {
    executionId: e.exec.id,
    version: e.exec.version,
    status: e.exec.status,
    at: e.at,
    failureKind: e.exec.failureKind,
    message: e.exec.message,
    exitCode: e.exec.exitCode,
  };
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * Artifact ids are derived from what they record (execution, attempt, kind, path), so a repeated
 * completion or a repeated flush inserts the same row, never a second one.
 */
export async function artifactId(executionId: string, attempt: number, kind: string, path: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${executionId}\n${attempt}\n${kind}\n${path}`)));
  let out = '';
  for (let i = 0; i < 24; i++) out += BASE32[digest[i]! & 31];
  return `art_${out}`;
}
