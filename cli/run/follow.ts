/**
 * Log streaming: polls GET /logs with the cursor from the previous answer and writes each chunk
 * to the matching local stream, stdout to stdout and stderr to stderr, so `rgrid run x.py > out`
 * behaves like running x.py locally. Polling (every ~300 ms while nothing new arrives) rather
 * than a push channel keeps the control plane stateless for this; new chunks are fetched again at
 * once, so a chatty script streams without added delay.
 */
import type { LogStream, LogsResponse } from '../../shared/api/executions.js';
import type { ExecutionState } from '../../shared/lifecycle.js';
import type { RGridClient } from '../api/client.js';
import { dim } from '../ui.js';

export interface LogSink {
  /** Writes one chunk; resolves once the destination accepted it (back-pressure). */
  write(stream: LogStream, data: string): Promise<void>;
}

function writeTo(out: NodeJS.WritableStream, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = out.write(data, (err) => (err ? reject(err) : undefined));
    if (ok) resolve();
    else out.once('drain', resolve);
  });
}

/**
 * stdout → stdout, stderr → stderr, the runner's own messages (system) → stderr, dimmed. With
 * `jsonMode` stdout is reserved for the JSON result, so the script's stdout goes to stderr.
 */
export function consoleSink(opts: { jsonMode?: boolean } = {}): LogSink {
  return {
    write(stream, data) {
      if (stream === 'stdout') return writeTo(opts.jsonMode ? process.stderr : process.stdout, data);
      if (stream === 'stderr') return writeTo(process.stderr, data);
      // The runner's own lines ("[rgrid] building environment…"), dimmed apart from the script's.
      const text = data
        .split(/(?<=\n)/)
        .map((line) => dim(line.replace(/\n$/, '')) + (line.endsWith('\n') ? '\n' : ''))
        .join('');
      return writeTo(process.stderr, text);
    },
  };
}

export interface FollowOptions {
  /** Only this stream (the server filters). */
  stream?: LogStream;
  /** Keep polling until the execution is final; otherwise print what exists and return. */
  follow: boolean;
  sink: LogSink;
  intervalMs?: number;
  /** Called on every answer (status changes, "still queued" hints). */
  onPoll?: (res: LogsResponse) => void;
  /** Called when a new attempt starts after an earlier one (the runner was lost). */
  onAttempt?: (attempt: number) => void;
  signal?: AbortSignal;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

/** Streams logs; resolves with the last status seen. */
export async function followLogs(client: RGridClient, id: string, opts: FollowOptions): Promise<ExecutionState> {
  let cursor: string | undefined;
  let attempt = 0;
  for (;;) {
    const res = await client.logs(id, { cursor, stream: opts.stream });
    opts.onPoll?.(res);
    for (const chunk of res.chunks) {
      if (chunk.attempt !== attempt) {
        if (attempt !== 0) opts.onAttempt?.(chunk.attempt);
        attempt = chunk.attempt;
      }
      await opts.sink.write(chunk.stream, chunk.data);
    }
    const advanced = res.cursor !== cursor;
    cursor = res.cursor;
    if (res.done) return res.status;
    if (!opts.follow && !advanced) return res.status;
    if (opts.signal?.aborted) return res.status;
    if (!advanced) await sleep(opts.intervalMs ?? 300, opts.signal);
  }
}
