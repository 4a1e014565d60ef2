/**
 * Chaos test of the dispatch core, with simulated runners (sim-runner.ts; no Docker): 100 runners
 * × 2 slots claim through a batch workload while runners die (right after a claim answer, or
 * mid-job), freeze past their leases and complete late, send completions twice (one after the
 * other, concurrently, twice in one request), while users cancel single executions and a whole
 * batch, fail-fast batches fail, and the control plane (workerd) restarts. Then, once every batch
 * finished, it proves from D1, the Dispatcher's audit and the runners' own records that:
 *  1. every execution is final in D1 and the Dispatcher holds nothing live, with an empty outbox;
 *  2. no two attempts of an execution were held and valid at the same time;
 *  3. output artifacts are unique per (execution, attempt, kind, path) and belong only to the
 *     attempt that completed the execution;
 *  4. D1 and the Dispatcher agree on every finished execution (status, attempt, version);
 *  5. every batch finished with counts adding up to its items (and matching D1);
 *  6. at most one completion per execution was accepted (not as a duplicate), and it is the one
 *     D1 shows.
 *
 *   npx vitest run --project reliability test/chaos               # CI size: 1,000 jobs
 *   RGRID_CHAOS_FULL=1 npx vitest run --project reliability test/chaos   # 10,000 jobs
 *   RGRID_CHAOS_SEED=1234 …                                       # replay a seed's plan
 *   RGRID_CHAOS_DUMP=1 …                                          # write every execution's history to a file
 *
 * On a violation it prints the first ones with the history of the executions named (D1 row, the
 * Dispatcher's snapshot, every runner's hold and completion) and writes all of them to a file.
 *
 * A seed fixes the plan (items' durations, failures and outputs; which runners die, freeze or
 * duplicate; which executions are canceled and when); the interleaving is the machine's.
 */
import { randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Stack, mapLimit, putBlob, report, sha256 } from '../reliability/harness.js';
import { isFinal, type ExecutionState } from '../../shared/lifecycle.js';
import type { BatchSnapshot } from '../../shared/api/batches.js';
import { Fleet, Rng, itemArgs, newLedger, sleep, type ChaosPlan, type CompletionRecord, type Hold, type Ledger } from './sim-runner.js';

const FULL = process.env.RGRID_CHAOS_FULL === '1';
const SEED = process.env.RGRID_CHAOS_SEED ? Number(process.env.RGRID_CHAOS_SEED) : randomInt(2 ** 31);
const LEASE_SECONDS = 3;
const MAX_ATTEMPTS = 3;
const SHARDS = 2;
const SIZE = FULL ? { runners: 100, batches: 20, perBatch: 500, restarts: [0.3, 0.65] } : { runners: 100, batches: 10, perBatch: 100, restarts: [0.45] };
const JOBS = SIZE.batches * SIZE.perBatch;
const scale = JOBS / 1000;
const PLAN: ChaosPlan = {
  slots: 2,
  pDieAfterClaim: 0.012,
  pDieMidJob: 0.008,
  pFreeze: 0.005,
  freezeMs: (LEASE_SECONDS + 3) * 1000,
  pDuplicate: 0.05,
  maxDeaths: Math.round(20 * scale),
  maxFreezes: Math.round(5 * scale),
};
/** Fail-fast batches (by index) and the share of failing items in them and elsewhere. */
const FAIL_FAST = new Set([1, 4]);
const P_FAIL_FAST_ITEM = 0.04;
const P_FAIL_ITEM = 0.02;
const P_OUTPUT = 0.5;
/** Share of executions canceled one by one, each when the run reaches a progress drawn in [0.05, 0.8]. */
const P_CANCEL = 0.02;
/** The batch canceled whole, when the run reaches this progress. */
const BATCH_CANCEL_AT = 0.3;
/** Grace below which a hand-over is not counted as an overlap (ms rounding of the two clocks' readings). */
const TOLERANCE_MS = 100;
const DEADLINE_MS = FULL ? 20 * 60_000 : 150_000;

interface PlannedBatch {
  index: number;
  batchId: string;
  failFast: boolean;
  items: { executionId: string; inputName: string; fail: boolean; output: boolean }[];
}

let stack: Stack;

beforeAll(async () => {
  stack = await Stack.start({ persist: true, leaseSeconds: LEASE_SECONDS, maxAttempts: MAX_ATTEMPTS });
  await stack.admin('POST', '/pools', { name: stack.pool, dispatchShards: SHARDS });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** An API call that rides through a control-plane restart (network errors, 5xx) but fails on any other error. */
async function api(method: string, path: string, body?: unknown): Promise<any> {
  const client = new Client(stack.url, stack.alice.apiKey);
  for (let i = 0; ; i++) {
    try {
      const r = await client.call(method, path, body === undefined ? {} : { body });
      if (r.status < 500) {
        if (r.status >= 300) throw Object.assign(new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`), { status: r.status, json: r.json });
        return r.json;
      }
    } catch (err) {
      if ((err as { status?: number }).status !== undefined || i > 300) throw err;
    }
    await sleep(200);
  }
}

async function createBatches(rng: Rng): Promise<PlannedBatch[]> {
  const script = Buffer.from('# simulated: the chaos runners never run it\nprint("hello")\n');
  const out: PlannedBatch[] = [];
  for (let b = 0; b < SIZE.batches; b++) {
    const failFast = FAIL_FAST.has(b);
    const plan = Array.from({ length: SIZE.perBatch }, (_, i) => ({
      inputName: `b${String(b).padStart(2, '0')}/item-${String(i).padStart(5, '0')}.txt`,
      ms: rng.int(200, 1500),
      fail: rng.chance(failFast ? P_FAIL_FAST_ITEM : P_FAIL_ITEM),
      output: rng.chance(P_OUTPUT),
    }));
    // A fail-fast batch always has a failure, and not among its very first items.
    if (failFast) plan[rng.int(Math.floor(SIZE.perBatch / 5), SIZE.perBatch - 1)]!.fail = true;
    const created = await api('POST', '/api/v1/batches', {
      name: `chaos ${b}`,
      failFast,
      template: { script: { name: 'job.py', sha256: sha256(script), size: script.length }, limits: { timeoutSeconds: 120, memoryMb: 128, cpus: 0.5 } },
      items: plan.map((p) => ({ inputName: p.inputName, args: itemArgs(p.ms, p.fail, p.output) })),
    });
    for (const u of created.uploads as { url: string }[]) await putBlob(u.url, script);
    await api('POST', `/api/v1/batches/${created.batch.id}/submit`);
    const byName = new Map(plan.map((p) => [p.inputName, p]));
    out.push({
      index: b,
      batchId: created.batch.id,
      failFast,
      items: (created.items as { executionId: string; inputName: string }[]).map((it) => ({ executionId: it.executionId, inputName: it.inputName, fail: byName.get(it.inputName)!.fail, output: byName.get(it.inputName)!.output })),
    });
  }
  return out;
}

/** The share of executions a completion was accepted for (what the chaos events are timed by). */
function progressOf(ledger: Ledger): number {
  const done = new Set<string>();
  for (const c of ledger.completions) if (c.answer === 'ok') done.add(c.executionId);
  return done.size / JOBS;
}

describe('dispatch chaos (simulated runners)', () => {
  it(
    `${JOBS} jobs over ${SIZE.runners} runners × ${PLAN.slots} slots survive deaths, freezes, duplicates, cancels and ${SIZE.restarts.length} restart(s)`,
    async () => {
      console.log(`[chaos] seed ${SEED} (replay with RGRID_CHAOS_SEED=${SEED}); ${JOBS} jobs, ${SIZE.runners} runners, lease ${LEASE_SECONDS}s, max attempts ${MAX_ATTEMPTS}, ${SHARDS} shards`);
      const root = new Rng(SEED);
      const planRng = root.fork(1);
      const chaosRng = root.fork(2);
      const fleetRng = root.fork(3);
      const ledger = newLedger();
      const t0 = Date.now();

      const batches = await createBatches(planRng);
      const allItems = batches.flatMap((b) => b.items.map((it) => ({ ...it, batch: b })));
      const batchOf = new Map(allItems.map((it) => [it.executionId, it.batch]));
      const submittedMs = Date.now() - t0;

      // Single cancels: which executions, and at what progress.
      const cancels = allItems.filter(() => chaosRng.chance(P_CANCEL)).map((it) => ({ executionId: it.executionId, at: 0.05 + chaosRng.next() * 0.75, done: false, status: 0 }));
      cancels.sort((a, b) => a.at - b.at);
      const restarts = SIZE.restarts.map((at) => ({ at, done: false, downMs: 0 }));
      let batchCancel: { at: number; batchId: string | null; status: string | null } = { at: BATCH_CANCEL_AT, batchId: null, status: null };

      const fleet = new Fleet({ baseUrl: () => stack.url, registrationToken: stack.registrationToken, plan: PLAN, rng: fleetRng, ledger, size: SIZE.runners, replaceAfterMs: 500 });
      await fleet.start();
      const startedMs = Date.now() - t0;

      // The chaos controller: fires the user-side events as the run progresses, until every batch finished.
      const pending = new Set(batches.map((b) => b.batchId));
      const finalSnapshots = new Map<string, BatchSnapshot>();
      const inFlight: Promise<unknown>[] = [];
      let lastPoll = 0;
      while (pending.size) {
        if (Date.now() - t0 > DEADLINE_MS) {
          const stuck = [];
          for (const id of pending) stuck.push((await api('GET', `/api/v1/batches/${id}`)).batch);
          throw new Error(`seed ${SEED}: batches not finished after ${DEADLINE_MS} ms: ${JSON.stringify(stuck.map((b) => ({ id: b.id, status: b.status, counts: b.counts })))}`);
        }
        const progress = progressOf(ledger);
        for (const r of restarts) {
          if (!r.done && progress >= r.at) {
            r.done = true;
            ledger.events.push(`${new Date().toISOString()} control plane restart at progress ${progress.toFixed(2)}`);
            // Awaited: nothing else of the controller's runs while workerd is down (runners retry on their own).
            r.downMs = await stack.restartControlPlane(300);
            ledger.events.push(`${new Date().toISOString()} control plane back after ${r.downMs} ms`);
          }
        }
        if (!batchCancel.batchId && progress >= batchCancel.at) {
          // The batch of the newest claim (so it has jobs running and queued), fail-fast ones excepted.
          const recent = [...ledger.holds].reverse().map((h) => batchOf.get(h.executionId)!).find((b) => !b.failFast) ?? batches.find((b) => !b.failFast)!;
          batchCancel.batchId = recent.batchId;
          ledger.events.push(`${new Date().toISOString()} cancel batch ${recent.index} (${recent.batchId}) at progress ${progress.toFixed(2)}`);
          inFlight.push(api('POST', `/api/v1/batches/${recent.batchId}/cancel`).then((r) => (batchCancel = { ...batchCancel, status: r.batch.status })));
        }
        for (const c of cancels) {
          if (c.done || progress < c.at) continue;
          c.done = true;
          inFlight.push(
            api('POST', `/api/v1/executions/${c.executionId}/cancel`).then(
              () => (c.status = 200),
              (err: { status?: number }) => {
                // 409: already final (it finished before the cancel arrived).
                if (err.status !== 409) throw err;
                c.status = 409;
              },
            ),
          );
        }
        if (Date.now() - lastPoll > 1000) {
          lastPoll = Date.now();
          await mapLimit([...pending], 8, async (id) => {
            const b = (await api('GET', `/api/v1/batches/${id}`)).batch as BatchSnapshot;
            if (b.status === 'finished' || b.status === 'canceled') {
              pending.delete(id);
              finalSnapshots.set(id, b);
            }
          });
        }
        await sleep(100);
      }
      await Promise.all(inFlight);
      const runMs = Date.now() - t0;
      await fleet.stop();
      // The cancel routes answer before a leased job ends; every batch is final, so nothing is left in flight.
      for (const id of finalSnapshots.keys()) finalSnapshots.set(id, (await api('GET', `/api/v1/batches/${id}`)).batch);

      // ------------------------------------------------------------ evidence
      const db = await stack.cp.mf.getD1Database('DB');
      type ExecRow = { id: string; batch_id: string; status: ExecutionState; attempt: number; version: number; failure_kind: string | null };
      const rows = (await db.prepare(`SELECT id, batch_id, status, attempt, version, failure_kind FROM executions WHERE account_id = ?`).bind(stack.alice.accountId).all()).results as unknown as ExecRow[];
      const d1 = new Map(rows.map((r) => [r.id, r]));
      type ArtRow = { execution_id: string; attempt: number; kind: string; path: string; n: number };
      const arts = (
        await db
          .prepare(`SELECT execution_id, attempt, kind, path, COUNT(*) AS n FROM artifacts WHERE account_id = ? AND kind != 'input' GROUP BY execution_id, attempt, kind, path`)
          .bind(stack.alice.accountId)
          .all()
      ).results as unknown as ArtRow[];
      const audit = (await stack.admin('GET', `/pools/${stack.pool}/dispatch/audit`)) as {
        shards: { live: { id: string }[]; finished: { id: string; status: string; attempt: number; version: number; exitCode: number | null; message: string | null }[]; outbox: number }[];
      };
      const snap = new Map(audit.shards.flatMap((s) => s.finished).map((e) => [e.id, e]));
      const holdsOf = group(ledger.holds, (h) => h.executionId);
      const completionsOf = group(ledger.completions, (c) => c.executionId);
      const artsOf = group(arts, (a) => a.execution_id);
      const story = (id: string) => ({
        executionId: id,
        batch: batchOf.get(id)?.index,
        d1: d1.get(id),
        dispatcher: snap.get(id),
        holds: (holdsOf.get(id) ?? []).map((h) => ({ ...h, innerEnd: innerEnd(h, completionsOf.get(id) ?? []) })),
        completions: completionsOf.get(id) ?? [],
        artifacts: artsOf.get(id) ?? [],
      });
      const t = fleet.timing!;
      const timing = { offerMs: t.offerSeconds * 1000, leaseMs: t.leaseSeconds * 1000 };
      function innerEnd(h: Hold, cs: CompletionRecord[]): number {
        // A lower bound of when the control plane's lease of this attempt ended: its offer deadline
        // (from the claim's sending), its last confirmed renewal (from that heartbeat's sending)
        // plus the lease, or an accepted completion (the lease was current when it was decided).
        let e = h.claimSentAt + timing.offerMs;
        if (h.lastRenewSentAt !== null) e = Math.max(e, h.lastRenewSentAt + timing.leaseMs);
        for (const c of cs) if (c.attempt === h.attempt && c.runnerId === h.runnerId && c.answer === 'ok') e = Math.max(e, c.sentAt);
        return e;
      }
      const violations: Record<string, string[]> = { final: [], overlap: [], artifacts: [], agreement: [], batches: [], completions: [] };
      const ids = allItems.map((it) => it.executionId);

      // 1. final in D1, nothing live in the Dispatcher, empty outbox
      for (const id of ids) {
        const r = d1.get(id);
        if (!r) violations.final!.push(`${id}: missing in D1`);
        else if (!isFinal(r.status)) violations.final!.push(`${id}: ${r.status} in D1`);
      }
      for (const [s, sh] of audit.shards.entries()) {
        if (sh.live.length) violations.final!.push(`shard ${s}: ${sh.live.length} live jobs: ${sh.live.slice(0, 5).map((e) => e.id).join(', ')}`);
        if (sh.outbox) violations.final!.push(`shard ${s}: outbox has ${sh.outbox} entries`);
      }

      // 2. no two attempts held and valid at once (and no attempt handed out twice)
      let minHandoffMs = Infinity;
      for (const [id, hs] of holdsOf) {
        const seen = new Map<number, Hold>();
        for (const h of hs) {
          const prev = seen.get(h.attempt);
          if (prev) violations.overlap!.push(`${id}: attempt ${h.attempt} handed to ${prev.runner} and ${h.runner}`);
          seen.set(h.attempt, h);
        }
        const cs = completionsOf.get(id) ?? [];
        const sorted = [...hs].sort((a, b) => a.attempt - b.attempt);
        for (let i = 0; i < sorted.length; i++) {
          for (let j = i + 1; j < sorted.length; j++) {
            const a = sorted[i]!;
            const b = sorted[j]!;
            if (a.attempt === b.attempt) continue;
            const gap = b.claimAnsweredAt - innerEnd(a, cs);
            if (j === i + 1) minHandoffMs = Math.min(minHandoffMs, gap);
            const overlap = Math.min(innerEnd(a, cs), innerEnd(b, cs)) - Math.max(a.claimAnsweredAt, b.claimAnsweredAt);
            if (overlap > TOLERANCE_MS) violations.overlap!.push(`${id}: attempt ${a.attempt} (${a.runner}) and attempt ${b.attempt} (${b.runner}) both valid for ${overlap} ms`);
          }
        }
      }

      // 3. artifacts: unique, and only of the attempt that completed the execution
      for (const a of arts) {
        const r = d1.get(a.execution_id);
        if (a.n !== 1) violations.artifacts!.push(`${a.execution_id}#${a.attempt} ${a.kind} ${a.path}: ${a.n} rows`);
        if (!r) {
          violations.artifacts!.push(`${a.execution_id}: artifact of an unknown execution`);
          continue;
        }
        if (r.attempt !== a.attempt) violations.artifacts!.push(`${a.execution_id}: artifact of attempt ${a.attempt}, but the execution ended in attempt ${r.attempt} (${r.status})`);
        const accepted = (completionsOf.get(a.execution_id) ?? []).find((c) => c.answer === 'ok' && c.attempt === a.attempt && c.outputs > 0);
        if (!accepted) violations.artifacts!.push(`${a.execution_id}#${a.attempt}: artifact ${a.path} with no accepted completion listing outputs`);
      }

      // 6. completions accepted at most once, and it is what D1 shows (checked before 4 and 5, the figures use it)
      let answerLost = 0;
      let lateAccepted = 0;
      for (const id of ids) {
        const r = d1.get(id);
        const cs = completionsOf.get(id) ?? [];
        const accepted = cs.filter((c) => c.answer === 'ok' && !c.duplicate);
        if (accepted.length > 1) violations.completions!.push(`${id}: ${accepted.length} completions accepted (${accepted.map((c) => `${c.runner}#${c.attempt} ${c.mode}`).join(', ')})`);
        for (const c of cs) {
          if (c.answer === 'ok' && r && c.attempt !== r.attempt) violations.completions!.push(`${id}: completion of attempt ${c.attempt} (${c.runner}, ${c.mode}) accepted, but D1 shows attempt ${r.attempt}`);
          // A late completion the Dispatcher accepted had not lost its lease yet (the alarm that
          // expires it had not run: a loaded machine); no other attempt can have started (check 2
          // counts the accepted completion as part of the lease). Counted, not a violation.
          if (c.mode === 'late' && c.answer === 'ok' && !c.duplicate) lateAccepted++;
          if (c.answer === 'ok' && c.duplicate && !accepted.some((a) => a.attempt === c.attempt && a.runnerId === c.runnerId)) {
            // "duplicate" with no accepted original in sight: legitimate only when the original's
            // answer was lost (a restart) and the execution ended exactly as this completion says.
            const s = snap.get(id);
            const same = r && s && r.attempt === c.attempt && r.status === completionStatus(c) && s.exitCode === c.exitCode && s.message === c.message;
            if (!same)
              violations.completions!.push(
                `${id}: ${c.mode} completion of attempt ${c.attempt} by ${c.runner} (${completionStatus(c)}, exit ${c.exitCode}) answered ok/duplicate, but no completion of it was accepted: the execution ended ${r?.status}/${r?.failure_kind} attempt ${r?.attempt} ("${s?.message}")`,
              );
          }
          if (c.answer === 'refused' && c.httpStatus !== 409) violations.completions!.push(`${id}: completion refused with ${c.httpStatus} ${c.errorCode} (expected 409 stale_attempt)`);
        }
        if (!r) continue;
        const byCompletion = r.status === 'succeeded' || (r.status === 'failed' && r.failure_kind !== 'runner_lost');
        if (byCompletion && accepted.length === 0) {
          // Accepted while workerd went down under the answer: the retry was answered "duplicate".
          if (cs.some((c) => c.answer === 'ok' && c.duplicate && c.retriedAfterLoss && c.attempt === r.attempt)) answerLost++;
          else violations.completions!.push(`${id}: ${r.status} in D1 but no completion was accepted`);
        }
        if (r.status === 'failed' && r.failure_kind === 'runner_lost' && accepted.length) violations.completions!.push(`${id}: runner_lost in D1 but a completion was accepted`);
        const c = accepted[0];
        if (c) {
          const want = completionStatus(c);
          if (r.status !== want) violations.completions!.push(`${id}: accepted completion says ${want}, D1 says ${r.status}`);
          if (c.outcome === 'failed' && r.failure_kind !== c.failureKind) violations.completions!.push(`${id}: accepted failure ${c.failureKind}, D1 says ${r.failure_kind}`);
          if (c.outputs && c.failureKind !== 'canceled' && !(artsOf.get(id) ?? []).some((a) => a.attempt === c.attempt && a.kind === 'output'))
            violations.artifacts!.push(`${id}#${c.attempt}: completion with an output accepted, but no artifact recorded`);
        }
      }

      // 4. D1 and the Dispatcher agree
      for (const id of ids) {
        const r = d1.get(id);
        const s = snap.get(id);
        if (!s) violations.agreement!.push(`${id}: not in the Dispatcher's finished set`);
        else if (r && (r.status !== s.status || r.attempt !== s.attempt || r.version !== s.version))
          violations.agreement!.push(`${id}: D1 ${r.status}/attempt ${r.attempt}/v${r.version}, Dispatcher ${s.status}/attempt ${s.attempt}/v${s.version}`);
      }

      // 5. batches finished, counts add up and match D1
      for (const b of batches) {
        const s = finalSnapshots.get(b.batchId)!;
        const c = s.counts;
        if (s.status !== 'finished' && s.status !== 'canceled') violations.batches!.push(`batch ${b.index}: status ${s.status}`);
        if (c.total !== b.items.length || c.succeeded + c.failed + c.canceled !== c.total)
          violations.batches!.push(`batch ${b.index}: ${JSON.stringify(c)} for ${b.items.length} items`);
        const inD1 = { succeeded: 0, failed: 0, canceled: 0 } as Record<string, number>;
        for (const it of b.items) {
          const st = d1.get(it.executionId)?.status;
          if (st) inD1[st] = (inD1[st] ?? 0) + 1;
        }
        if (inD1.succeeded !== c.succeeded || inD1.failed !== c.failed || inD1.canceled !== c.canceled)
          violations.batches!.push(`batch ${b.index}: snapshot ${c.succeeded}/${c.failed}/${c.canceled}, D1 ${inD1.succeeded}/${inD1.failed}/${inD1.canceled} (succeeded/failed/canceled)`);
        if (b.failFast && c.failed === 0) violations.batches!.push(`batch ${b.index}: fail-fast batch with no failure`);
      }

      // ------------------------------------------------------------ figures
      const statusCounts: Record<string, number> = {};
      for (const id of ids) {
        const r = d1.get(id);
        const k = r ? (r.failure_kind && r.status !== 'canceled' ? `${r.status}/${r.failure_kind}` : r.status) : 'missing';
        statusCounts[k] = (statusCounts[k] ?? 0) + 1;
      }
      const claimed = new Set(ledger.holds.map((h) => h.executionId));
      const modes: Record<string, number> = {};
      for (const c of ledger.completions) modes[`${c.mode}:${c.answer}${c.duplicate ? '-dup' : ''}`] = (modes[`${c.mode}:${c.answer}${c.duplicate ? '-dup' : ''}`] ?? 0) + 1;
      const ffCanceled = batches.filter((b) => b.failFast).map((b) => finalSnapshots.get(b.batchId)!.counts.canceled);
      await report('dispatch chaos', {
        full: FULL,
        seed: SEED,
        jobs: JOBS,
        runners: SIZE.runners,
        slots: PLAN.slots,
        shards: SHARDS,
        timing: fleet.timing,
        maxAttempts: MAX_ATTEMPTS,
        wallMs: runMs,
        loadAverage: loadavg().map((x) => Math.round(x * 10) / 10),
        submitMs: submittedMs,
        fleetStartMs: startedMs - submittedMs,
        outcomes: statusCounts,
        deaths: { afterClaim: ledger.counters.death_after_claim ?? 0, midJob: ledger.counters.death_mid_job ?? 0, runnersRegistered: fleet.runners.length },
        freezes: ledger.counters.freezes ?? 0,
        completions: modes,
        duplicatesSent: (ledger.counters.completions_sequential ?? 0) / 2 + (ledger.counters.completions_concurrent ?? 0) / 2 + (ledger.counters['completions_same-request'] ?? 0) / 2,
        answerLostThenDuplicate: answerLost,
        lateCompletions: { sent: ledger.completions.filter((c) => c.mode === 'late').length, refused: ledger.completions.filter((c) => c.mode === 'late' && c.answer === 'refused').length, acceptedBeforeExpiry: lateAccepted },
        cancels: { single: cancels.length, singleAccepted: cancels.filter((c) => c.status === 200).length, batch: batchCancel.batchId ? 1 : 0, failFastCanceled: ffCanceled },
        restarts: restarts.map((r) => r.downMs),
        requeues: ledger.holds.length - claimed.size,
        holdsUnacknowledged: ledger.holds.filter((h) => h.renewals === 0).length,
        staleInHeartbeat: ledger.counters.stale_in_heartbeat ?? 0,
        cancelInHeartbeat: ledger.counters.cancel_in_heartbeat ?? 0,
        outputs: { uploaded: ledger.counters.outputs_uploaded ?? 0, artifactRows: arts.length },
        minHandoffMs: Number.isFinite(minHandoffMs) ? minHandoffMs : null,
        latencyMs: Object.fromEntries(Object.entries(ledger.latency).map(([k, xs]) => [k, { n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) }])),
        http: { claims: ledger.counters.claims ?? 0, heartbeats: ledger.counters.heartbeats ?? 0, heartbeatsLost: ledger.counters.heartbeats_lost ?? 0, networkErrors: ledger.counters.network_errors ?? 0, ...Object.fromEntries(Object.entries(ledger.counters).filter(([k]) => /^(http|claim|heartbeat|presign)_\d+$/.test(k))) },
      });

      const failing = Object.entries(violations).filter(([, v]) => v.length);
      if (failing.length) {
        console.log(`[chaos] seed ${SEED}: VIOLATIONS`);
        for (const [k, v] of failing) console.log(`  ${k} (${v.length}):\n    ${v.slice(0, 20).join('\n    ')}`);
        const someIds = [...new Set(failing.flatMap(([, v]) => v.slice(0, 3).map((s) => /exec_[a-z0-9]+/.exec(s)?.[0]).filter(Boolean) as string[]))].slice(0, 6);
        for (const id of someIds) console.log(`[chaos] history of ${id}:\n${JSON.stringify(story(id), null, 1)}`);
        console.log(`[chaos] events:\n  ${ledger.events.join('\n  ')}`);
      }
      if (failing.length || process.env.RGRID_CHAOS_DUMP) {
        // Every execution's history when RGRID_CHAOS_DUMP is set, else those named in a violation.
        const dump = join(tmpdir(), `rgrid-chaos-${SEED}-${Date.now()}.json`);
        const named = process.env.RGRID_CHAOS_DUMP ? ids : [...new Set(failing.flatMap(([, v]) => v.map((s) => /exec_[a-z0-9]+/.exec(s)?.[0]).filter(Boolean) as string[]))];
        await writeFile(dump, JSON.stringify({ seed: SEED, violations, events: ledger.events, histories: named.map(story) }, null, 1));
        console.log(`[chaos] violations, events and histories: ${dump}`);
      }
      expect.soft(violations.final, `seed ${SEED}: 1. final states, nothing live`).toEqual([]);
      expect.soft(violations.overlap, `seed ${SEED}: 2. no overlapping attempts`).toEqual([]);
      expect.soft(violations.artifacts, `seed ${SEED}: 3. artifacts`).toEqual([]);
      expect.soft(violations.agreement, `seed ${SEED}: 4. D1 = Dispatcher`).toEqual([]);
      expect.soft(violations.batches, `seed ${SEED}: 5. batches`).toEqual([]);
      expect.soft(violations.completions, `seed ${SEED}: 6. completions`).toEqual([]);
      // The chaos did happen (a run where none of it fired proves little).
      expect(ledger.counters.death_after_claim ?? 0, 'deaths right after a claim').toBeGreaterThan(0);
      expect(ledger.counters.death_mid_job ?? 0, 'deaths mid-job').toBeGreaterThan(0);
      expect(ledger.completions.filter((c) => c.mode !== 'single' && c.mode !== 'late').length, 'duplicated completions').toBeGreaterThan(0);
      expect(restarts.every((r) => r.done)).toBe(true);
    },
    DEADLINE_MS + 120_000,
  );
});

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

function completionStatus(c: CompletionRecord): ExecutionState {
  return c.outcome === 'succeeded' ? 'succeeded' : c.failureKind === 'canceled' ? 'canceled' : 'failed';
}

function group<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) (m.get(key(x)) ?? m.set(key(x), []).get(key(x))!).push(x);
  return m;
}
