/**
 * Job logs: every byte goes to a full log file (kept as an artifact), and the first
 * `maxStreamedBytes` also stream live to the control plane in ordered chunks. Chunks carry a
 * sequence number per attempt, so a retried push is deduplicated by the server.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { LogChunk } from '../../shared/api/runner.js';
import type { LogStream } from '../../shared/api/executions.js';
import { LIMITS } from '../../shared/limits.js';
import { ApiCallError, isAttemptOver, type JobRef, type RunnerApi } from './api.js';
import { withRetry } from './retry.js';

const CHUNK_CHARS = 32 * 1024;
/**
 * Serialized chunks per request, well under the API's 1 MiB body limit. Counting chunks alone is
 * not enough: 100 chunks of 32 K characters are ~3.2 MB, and a refused (413) batch used to be
 * dropped whole, notice of truncation included (F7).
 */
const MAX_REQUEST_BYTES = 512 * 1024;
const FLUSH_MS = 300;
const MAX_FILE_BYTES = 512 * 1024 ** 2;

export interface LogFile {
  name: string;
  localPath: string;
  size: number;
}

export class LogShipper {
  private seq = 0;
  private streamed = 0;
  private truncated = false;
  private stopped = false;
  private readonly pending: LogChunk[] = [];
  private readonly decoders = new Map<LogStream, StringDecoder>();
  private readonly files = new Map<LogStream, { out: WriteStream; bytes: number; path: string }>();
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: RunnerApi,
    private readonly executionId: string,
    /** The attempt and shard every push names. */
    private readonly ref: JobRef,
    private readonly logDir: string,
    private readonly maxStreamedBytes: number,
    /** Aborted when the attempt is no longer ours: stop sending (and retrying) at once. */
    private readonly signal?: AbortSignal,
  ) {}

  write(stream: LogStream, data: Buffer | string): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    this.toFile(stream, buf);
    if (this.truncated || this.stopped) return;
    let decoder = this.decoders.get(stream);
    if (!decoder) this.decoders.set(stream, (decoder = new StringDecoder('utf8')));
    let text = decoder.write(buf);
    if (this.streamed + text.length > this.maxStreamedBytes) {
      text = text.slice(0, Math.max(0, this.maxStreamedBytes - this.streamed));
      this.truncated = true;
    }
    this.streamed += text.length;
    for (let i = 0; i < text.length; i += CHUNK_CHARS) this.enqueue(stream, text.slice(i, i + CHUNK_CHARS));
    if (this.truncated) {
      this.enqueue('system', `\n[rgrid] live log truncated after ${this.maxStreamedBytes} bytes; the full stdout and stderr are kept as log artifacts\n`);
    }
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** A line from the runner itself (build output, transfers, warnings). */
  system(line: string): void {
    this.write('system', line.endsWith('\n') ? line : line + '\n');
  }

  private enqueue(stream: LogStream, data: string): void {
    if (data) this.pending.push({ seq: this.seq++, stream, data });
  }

  private toFile(stream: LogStream, buf: Buffer): void {
    let f = this.files.get(stream);
    if (!f) {
      const path = join(this.logDir, `${stream}.log`);
      f = { out: createWriteStream(path), bytes: 0, path };
      this.files.set(stream, f);
    }
    if (f.bytes >= MAX_FILE_BYTES) return;
    const room = MAX_FILE_BYTES - f.bytes;
    const part = buf.length > room ? buf.subarray(0, room) : buf;
    f.bytes += part.length;
    f.out.write(part);
    if (f.bytes >= MAX_FILE_BYTES) f.out.write(`\n[rgrid] ${stream} log truncated at ${MAX_FILE_BYTES} bytes\n`);
  }

  /** Sends what is pending; sends are serialized so chunks arrive in order. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.sending = this.sending.then(() => this.sendPending());
    return this.sending;
  }

  private async sendPending(): Promise<void> {
    while (this.pending.length && !this.stopped && !this.signal?.aborted) {
      const batch = this.pending.splice(0, this.batchLength());
      try {
        await this.send(batch);
      } catch (err) {
        // A stale attempt is handled by the heartbeat; other failures only cost live log lines
        // (the full log is still uploaded as an artifact).
        if (isAttemptOver(err)) this.stopped = true;
        else this.pending.length = 0;
        return;
      }
    }
  }

  /** How many pending chunks go in the next request: by count and by serialized size. */
  private batchLength(): number {
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && n < LIMITS.maxLogChunksPerRequest) {
      bytes += Buffer.byteLength(JSON.stringify(this.pending[n])) + 1;
      if (n > 0 && bytes > MAX_REQUEST_BYTES) break;
      n++;
    }
    return n;
  }

  /** One request, retried; a batch the API finds too large (413) is split in halves, never dropped. */
  private async send(batch: LogChunk[]): Promise<void> {
    try {
      await withRetry(() => this.api.appendLogs(this.executionId, { attempt: this.ref.attempt, shard: this.ref.shard, chunks: batch }, this.signal), { budgetMs: 30_000, signal: this.signal });
    } catch (err) {
      if (!(err instanceof ApiCallError && err.status === 413)) throw err;
      // A single chunk (≤ 32 K characters) cannot be split further: only it is lost.
      if (batch.length === 1) return;
      const half = Math.ceil(batch.length / 2);
      await this.send(batch.slice(0, half));
      await this.send(batch.slice(half));
    }
  }

  /** Flushes decoders and the live stream, closes the files, and lists the non-empty ones. */
  async close(): Promise<LogFile[]> {
    for (const [stream, d] of this.decoders) {
      const rest = d.end();
      if (rest && !this.truncated && !this.stopped) this.enqueue(stream, rest);
    }
    await this.flush();
    const out: LogFile[] = [];
    for (const [stream, f] of this.files) {
      await new Promise<void>((resolve, reject) => f.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      const { size } = await stat(f.path);
      if (size > 0) out.push({ name: `${stream}.log`, localPath: f.path, size });
    }
    return out;
  }
}
