/** The autoscaler's decision function as a table of cases: queue, slots, idle times, billing minute, min/max. */
import { describe, expect, it } from 'vitest';
import { decide, minuteOfPaidHour, type DecideInput, type FleetPolicy, type ServerView } from '../src/fleet/decide.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const MIN = 60_000;

const policy: FleetPolicy = {
  minServers: 0,
  maxServers: 5,
  slotsPerServer: 2,
  idleTimeoutSeconds: 600,
  scaleDown: 'billing-hour',
  billingWindowMinutes: 10,
  bootTimeoutSeconds: 900,
  silentTimeoutSeconds: 180,
  drainGraceSeconds: 30,
};

let n = 0;
/** A server created `ageMin` minutes ago, with a live idle runner unless told otherwise. */
function server(ageMin: number, o: Omit<Partial<ServerView>, 'runner'> & { runner?: Partial<NonNullable<ServerView['runner']>> | null } = {}): ServerView {
  n++;
  const { runner, ...rest } = o;
  return {
    id: `srv_${n}`,
    providerId: 1000 + n,
    name: `s${n}`,
    createdAt: NOW - ageMin * MIN,
    inProvider: true,
    drainRequestedAt: null,
    idleSince: null,
    runner: runner === null ? null : { id: `rnr_${n}`, slots: 2, activeJobs: 0, draining: false, lastSeenAt: NOW - 5_000, ...runner },
    ...rest,
  };
}

interface Case {
  name: string;
  policy?: Partial<FleetPolicy>;
  queue?: { ready: number; leased?: number };
  servers?: ServerView[];
  /** Actions as `kind` or `kind:serverName`, in order. */
  actions: string[];
  /** A fragment every expected hold contains. */
  holds?: string[];
}

const cases: Case[] = [
  { name: 'empty pool, empty queue: nothing', actions: [] },
  { name: 'below min: servers up to min', policy: { minServers: 2 }, actions: ['create', 'create'] },
  { name: '5 jobs, no servers, 2 slots each: 3 servers', queue: { ready: 5 }, actions: ['create', 'create', 'create'] },
  { name: '20 jobs, max 3: 3 servers and a hold at max', policy: { maxServers: 3 }, queue: { ready: 20 }, actions: ['create', 'create', 'create'], holds: ['maxServers'] },
  { name: 'booting servers count as incoming slots', queue: { ready: 5 }, servers: [server(2, { runner: null })], actions: ['create', 'create'] },
  { name: 'free slots on live runners are used first', queue: { ready: 4 }, servers: [server(5, { idleSince: NOW - MIN })], actions: ['create'] },
  { name: 'a busy runner has no free slots', queue: { ready: 2, leased: 2 }, servers: [server(5, { runner: { activeJobs: 2 } })], actions: ['create'] },
  { name: 'enough capacity: nothing', queue: { ready: 1 }, servers: [server(5, { idleSince: NOW - 20 * MIN })], actions: [] },
  {
    name: 'idle past timeout, minute 30 of its hour: kept until the paid hour ends',
    servers: [server(30, { idleSince: NOW - 20 * MIN })],
    actions: [],
    holds: ['last 10 min of its paid hour (now at minute 30)'],
  },
  { name: 'idle past timeout, minute 55 of its hour: drained', servers: [server(115, { name: 'late', idleSince: NOW - 20 * MIN })], actions: ['drain:late'] },
  { name: 'idle policy: drained as soon as the idle timeout ends', policy: { scaleDown: 'idle' }, servers: [server(30, { name: 'a', idleSince: NOW - 11 * MIN })], actions: ['drain:a'] },
  { name: 'idle, but not long enough: kept', policy: { scaleDown: 'idle' }, servers: [server(30, { idleSince: NOW - 5 * MIN })], actions: [] },
  { name: 'never drained while jobs wait', policy: { scaleDown: 'idle' }, queue: { ready: 3 }, servers: [server(55, { idleSince: NOW - 30 * MIN, runner: { activeJobs: 0, slots: 4 } })], actions: [] },
  { name: 'a busy runner is never drained', policy: { scaleDown: 'idle' }, servers: [server(55, { runner: { activeJobs: 1 } })], actions: [] },
  { name: 'min is kept', policy: { minServers: 1, scaleDown: 'idle' }, servers: [server(55, { idleSince: NOW - 30 * MIN })], actions: [], holds: ['minServers'] },
  {
    name: 'two idle, min 1: the one nearest the end of its paid hour goes',
    policy: { minServers: 1 },
    servers: [server(52, { name: 'early', idleSince: NOW - 30 * MIN }), server(58, { name: 'last', idleSince: NOW - 30 * MIN })],
    actions: ['drain:last'],
  },
  { name: 'runner never registered within the boot timeout: deleted', servers: [server(16, { name: 'dud', runner: null })], actions: ['delete:dud'] },
  { name: 'still within the boot timeout: waited for', servers: [server(14, { runner: null })], actions: [] },
  {
    name: 'silent runner: server deleted and replaced while work waits',
    queue: { ready: 2 },
    servers: [server(20, { name: 'lost', runner: { lastSeenAt: NOW - 4 * MIN, activeJobs: 2 } })],
    actions: ['delete:lost', 'create'],
  },
  { name: 'drained and idle past the grace: deleted', servers: [server(59, { name: 'd', drainRequestedAt: NOW - MIN, runner: { draining: true } })], actions: ['delete:d'] },
  { name: 'drain asked moments ago: waits out the grace', servers: [server(59, { drainRequestedAt: NOW - 10_000, runner: { draining: true } })], actions: [] },
  { name: 'draining runner still finishing a job: waited for', servers: [server(59, { drainRequestedAt: NOW - 5 * MIN, runner: { draining: true, activeJobs: 1 } })], actions: [] },
  { name: 'draining runner went quiet: deleted', servers: [server(59, { name: 'q', drainRequestedAt: NOW - 10 * MIN, runner: { draining: false, lastSeenAt: NOW - 5 * MIN } })], actions: ['delete:q'] },
  { name: 'gone from Hetzner: forgotten', servers: [server(10, { name: 'gone', inProvider: false })], actions: ['forget:gone'] },
  {
    name: 'draining servers count toward max',
    policy: { maxServers: 2 },
    queue: { ready: 6 },
    servers: [server(59, { drainRequestedAt: NOW - 5_000, runner: { draining: true, activeJobs: 1 } }), server(5, { runner: { activeJobs: 2 } })],
    actions: [],
    holds: ['maxServers (2 of 2)'],
  },
  { name: 'no scale-down in the same check as a scale-up', policy: { scaleDown: 'idle', minServers: 3 }, servers: [server(55, { idleSince: NOW - 30 * MIN })], actions: ['create', 'create'] },
];

describe('autoscaler decisions', () => {
  it.each(cases)('$name', (c) => {
    const input: DecideInput = { now: NOW, policy: { ...policy, ...c.policy }, queue: { ready: c.queue?.ready ?? 0, leased: c.queue?.leased ?? 0 }, servers: c.servers ?? [] };
    const d = decide(input);
    const names = new Map(input.servers.map((s) => [s.id, s.name]));
    expect(d.actions.map((a) => (a.kind === 'create' ? 'create' : `${a.kind}:${names.get(a.serverId)}`))).toEqual(c.actions);
    for (const a of d.actions) expect(a.reason.length).toBeGreaterThan(10);
    for (const h of c.holds ?? []) expect(d.holds.some((x) => x.includes(h)), `holds: ${JSON.stringify(d.holds)}`).toBe(true);
  });

  it('explains scale-ups with the numbers it used', () => {
    const d = decide({ now: NOW, policy, queue: { ready: 5, leased: 0 }, servers: [] });
    expect(d.actions[0]!.reason).toContain('5 job(s) waiting, 0 free slot(s) on live runners, 0 slot(s) booting');
  });

  it('counts minutes into the paid hour from creation', () => {
    expect(minuteOfPaidHour(NOW - 59 * MIN, NOW)).toBe(59);
    expect(minuteOfPaidHour(NOW - 61 * MIN, NOW)).toBe(1);
    expect(minuteOfPaidHour(NOW + MIN, NOW)).toBe(0);
  });
});
