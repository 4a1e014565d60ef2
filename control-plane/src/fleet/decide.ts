/**
 * The autoscaler's brain: a pure function from what it sees (queue, servers, runners, time) to
 * what to do, each action with the reason an operator will read. No I/O here, so every rule is
 * tested as a table of cases (control-plane/test/fleet-decide.test.ts); reconcile.ts gathers the
 * input and carries the actions out.
 *
 * Rules, in the order they apply:
 *   1. cleanup: a recorded server the cloud no longer has is forgotten; a server whose runner
 *      never registered (boot timeout) or stopped heartbeating (silent timeout) is deleted —
 *      its jobs come back through lease expiry; a draining server is deleted once its runner is
 *      idle and the drain grace has passed, or once the runner has gone quiet;
 *   2. scale up: jobs waiting beyond the free slots of live runners and the slots of servers
 *      still booting get new servers (slotsPerServer each), up to maxServers; never below min;
 *   3. scale down, only with nothing waiting: runners idle past idleTimeout are drained, keeping
 *      minServers, and with the billing-hour policy only in the last minutes of a paid hour
 *      (Hetzner bills every started hour, so a server deleted at minute 5 paid for 55 unused).
 */
import type { FleetPoolConfig } from '../../../shared/fleet/api.js';

export type FleetPolicy = Pick<
  FleetPoolConfig,
  'minServers' | 'maxServers' | 'slotsPerServer' | 'idleTimeoutSeconds' | 'scaleDown' | 'billingWindowMinutes' | 'bootTimeoutSeconds' | 'silentTimeoutSeconds' | 'drainGraceSeconds'
>;

export interface RunnerView {
  id: string;
  slots: number;
  activeJobs: number;
  /** The runner itself reported that it is draining. */
  draining: boolean;
  lastSeenAt: number;
}

export interface ServerView {
  /** RGrid server id (srv_…), from our records or the server's rgrid-server label. */
  id: string;
  providerId: number | null;
  name: string;
  /** When the cloud created it: billing starts here. */
  createdAt: number;
  /** Listed by the cloud right now. */
  inProvider: boolean;
  /** The autoscaler asked its runner to drain at this time. */
  drainRequestedAt: number | null;
  /** Its runner has had no job since this time (null: busy, or no runner yet). */
  idleSince: number | null;
  runner: RunnerView | null;
}

export interface DecideInput {
  now: number;
  policy: FleetPolicy;
  queue: { ready: number; leased: number };
  servers: ServerView[];
}

export type FleetAction =
  | { kind: 'create'; reason: string }
  | { kind: 'drain'; serverId: string; reason: string }
  | { kind: 'delete'; serverId: string; reason: string }
  | { kind: 'forget'; serverId: string; reason: string };

export interface Decision {
  actions: FleetAction[];
  /** Why nothing (more) is done, when that is worth knowing (at max, waiting for the paid hour…). */
  holds: string[];
}

const sec = (ms: number) => Math.round(ms / 1000);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Minutes into the server's current paid hour (0-59). */
export function minuteOfPaidHour(createdAt: number, now: number): number {
  return Math.floor((Math.max(0, now - createdAt) % HOUR) / MINUTE);
}

export function decide(input: DecideInput): Decision {
  const { now, policy: p, queue } = input;
  const actions: FleetAction[] = [];
  const holds: string[] = [];

  // ---- 1. cleanup
  const live: ServerView[] = [];
  const booting: ServerView[] = [];
  const draining: ServerView[] = [];
  for (const s of input.servers) {
    if (!s.inProvider) {
      actions.push({ kind: 'forget', serverId: s.id, reason: `${s.name} is no longer listed by Hetzner (deleted outside the autoscaler, or its creation did not complete)` });
      continue;
    }
    const r = s.runner;
    if (!r) {
      const age = now - s.createdAt;
      if (age > p.bootTimeoutSeconds * 1000) {
        actions.push({ kind: 'delete', serverId: s.id, reason: `runner never registered: ${s.name} was created ${sec(age)} s ago (boot timeout ${p.bootTimeoutSeconds} s)` });
      } else if (s.drainRequestedAt !== null) {
        // Drained before its runner ever came up (scaled down while booting): nothing to wait for.
        actions.push({ kind: 'delete', serverId: s.id, reason: `${s.name} was drained before its runner registered` });
      } else booting.push(s);
      continue;
    }
    const quiet = now - r.lastSeenAt;
    if (s.drainRequestedAt !== null) {
      const since = now - s.drainRequestedAt;
      if (r.draining && r.activeJobs === 0 && since >= p.drainGraceSeconds * 1000) {
        actions.push({ kind: 'delete', serverId: s.id, reason: `runner ${r.id} finished draining (idle, drain asked ${sec(since)} s ago)` });
      } else if (quiet > p.silentTimeoutSeconds * 1000) {
        actions.push({ kind: 'delete', serverId: s.id, reason: `runner ${r.id} went quiet while draining (last heartbeat ${sec(quiet)} s ago)` });
      } else draining.push(s);
      continue;
    }
    if (quiet > p.silentTimeoutSeconds * 1000) {
      actions.push({ kind: 'delete', serverId: s.id, reason: `runner ${r.id} stopped heartbeating ${sec(quiet)} s ago (silent timeout ${p.silentTimeoutSeconds} s); its jobs return to the queue when their leases expire` });
      continue;
    }
    live.push(s);
  }

  // ---- 2. scale up
  const existing = live.length + booting.length + draining.length;
  const freeLive = live.reduce((n, s) => n + Math.max(0, s.runner!.slots - s.runner!.activeJobs), 0);
  const incoming = booting.length * p.slotsPerServer;
  const unserved = queue.ready - freeLive - incoming;
  let wanted = 0;
  let why = '';
  if (unserved > 0) {
    wanted = Math.ceil(unserved / p.slotsPerServer);
    why = `${queue.ready} job(s) waiting, ${freeLive} free slot(s) on live runners, ${incoming} slot(s) booting`;
  }
  if (existing + wanted < p.minServers) {
    wanted = p.minServers - existing;
    why = `below minServers (${existing} of ${p.minServers})`;
  }
  const room = Math.max(0, p.maxServers - existing);
  const creating = Math.min(wanted, room);
  for (let i = 0; i < creating; i++) actions.push({ kind: 'create', reason: `${why}: server ${i + 1} of ${creating} (${p.slotsPerServer} slots each)` });
  if (wanted > creating) holds.push(`${why}, but the pool is at maxServers (${existing + creating} of ${p.maxServers}); ${wanted - creating} more server(s) would help`);

  // ---- 3. scale down (only when nothing waits and nothing is being added)
  if (queue.ready === 0 && creating === 0) {
    let keep = live.length + booting.length;
    const idle = live
      .filter((s) => s.runner!.activeJobs === 0 && s.idleSince !== null && now - s.idleSince >= p.idleTimeoutSeconds * 1000)
      // Those closest to the end of their paid hour first.
      .sort((a, b) => minuteOfPaidHour(b.createdAt, now) - minuteOfPaidHour(a.createdAt, now));
    for (const s of idle) {
      const idleFor = sec(now - s.idleSince!);
      if (keep <= p.minServers) {
        holds.push(`${s.name} idle for ${idleFor} s, kept: the pool is at minServers (${p.minServers})`);
        continue;
      }
      const minute = minuteOfPaidHour(s.createdAt, now);
      if (p.scaleDown === 'billing-hour' && minute < 60 - p.billingWindowMinutes) {
        holds.push(`${s.name} idle for ${idleFor} s, kept until the last ${p.billingWindowMinutes} min of its paid hour (now at minute ${minute})`);
        continue;
      }
      keep--;
      const when = p.scaleDown === 'billing-hour' ? `, minute ${minute} of its paid hour` : '';
      actions.push({ kind: 'drain', serverId: s.id, reason: `runner ${s.runner!.id} idle for ${idleFor} s (idle timeout ${p.idleTimeoutSeconds} s)${when}; no jobs waiting` });
    }
  }
  return { actions, holds };
}
