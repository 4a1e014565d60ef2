/**
 * Container lifecycle timestamps from the Docker daemon's event stream (create, start, die,
 * destroy), for containers carrying a given label: how long each container step takes, measured
 * by the daemon itself, with no change to the code under test.
 */
import Docker from 'dockerode';

export interface ContainerTimeline {
  /** The label value (e.g. the execution id, or the bench item). */
  key: string;
  /** Action → time, ms on the performance.now() clock of this process. */
  at: Partial<Record<'create' | 'attach' | 'start' | 'die' | 'destroy', number>>;
}

export interface EventRecorder {
  timelines: Map<string, ContainerTimeline>;
  stop(): void;
}

/** Records events of containers that have `label`; `key` is that label's value. */
export async function recordContainerEvents(label: string): Promise<EventRecorder> {
  const docker = new Docker();
  // Event times are wall-clock nanoseconds; map them onto performance.now().
  const offset = Date.now() - performance.now();
  const stream = (await docker.getEvents({ filters: { type: ['container'], label: [label] } })) as NodeJS.ReadableStream & { destroy?: () => void };
  const timelines = new Map<string, ContainerTimeline>();
  let buf = '';
  stream.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        const ev = JSON.parse(line) as { Action: string; timeNano: number; Actor: { Attributes: Record<string, string> } };
        const key = ev.Actor.Attributes[label];
        if (!key) continue;
        const action = ev.Action.split(':')[0] as keyof ContainerTimeline['at'];
        if (!['create', 'attach', 'start', 'die', 'destroy'].includes(action)) continue;
        const t = ev.timeNano / 1e6 - offset;
        let tl = timelines.get(key);
        if (!tl) timelines.set(key, (tl = { key, at: {} }));
        tl.at[action] ??= t;
      } catch {
        // partial or foreign line
      }
    }
  });
  stream.on('error', () => undefined);
  return { timelines, stop: () => stream.destroy?.() };
}
