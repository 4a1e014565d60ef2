/**
 * Decoding of the progress stream of a BuildKit build (`POST /build?version=2`).
 *
 * The daemon answers with newline-delimited JSON. BuildKit progress arrives as
 * `{"id":"moby.buildkit.trace","aux":"<base64>"}` where the base64 is a protobuf
 * `moby.buildkit.v1.StatusResponse` (moby/buildkit api/services/control/control.proto). We decode
 * only the fields we need with a tiny wire-format reader instead of loading a .proto at run time:
 *
 *   StatusResponse { repeated Vertex vertexes = 1; repeated VertexStatus statuses = 2;
 *                    repeated VertexLog logs = 3; repeated VertexWarning warnings = 4; }
 *   Vertex    { string digest = 1; string name = 3; bool cached = 4;
 *               Timestamp started = 5; Timestamp completed = 6; string error = 7; }
 *   VertexLog { string vertex = 1; int64 stream = 3; bytes msg = 4; }
 *
 * The point is pip's own output: a failed `pip install` prints "ERROR: No matching distribution
 * found for X" into a VertexLog, while the daemon's final error only says "exit code: 1".
 */

export interface BuildkitVertex {
  digest: string;
  name: string;
  cached: boolean;
  started: boolean;
  completed: boolean;
  error: string;
}

export interface BuildkitLog {
  vertex: string;
  /** 1 = stdout, 2 = stderr */
  stream: number;
  msg: Buffer;
}

export interface BuildkitStatus {
  vertexes: BuildkitVertex[];
  logs: BuildkitLog[];
}

type Field = { no: number; varint?: number; bytes?: Buffer };

/** Iterates the top-level fields of one protobuf message. Unknown wire types throw. */
function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const varint = (): number => {
    // Numbers here (field tags, lengths, small int64s) fit in 2^53; multiply instead of
    // shifting so values above 2^31 do not go negative.
    let result = 0;
    let mul = 1;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated protobuf varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wire = key & 7;
    switch (wire) {
      case 0:
        yield { no, varint: varint() };
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        const len = varint();
        if (pos + len > buf.length) throw new Error('truncated protobuf field');
        yield { no, bytes: buf.subarray(pos, pos + len) };
        pos += len;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
}

function decodeVertex(buf: Buffer): BuildkitVertex {
  const v: BuildkitVertex = { digest: '', name: '', cached: false, started: false, completed: false, error: '' };
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) v.digest = f.bytes.toString('utf8');
    else if (f.no === 3 && f.bytes) v.name = f.bytes.toString('utf8');
    else if (f.no === 4) v.cached = f.varint === 1;
    else if (f.no === 5) v.started = true;
    else if (f.no === 6) v.completed = true;
    else if (f.no === 7 && f.bytes) v.error = f.bytes.toString('utf8');
  }
  return v;
}

function decodeLog(buf: Buffer): BuildkitLog {
  const l: BuildkitLog = { vertex: '', stream: 1, msg: Buffer.alloc(0) };
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) l.vertex = f.bytes.toString('utf8');
    else if (f.no === 3 && f.varint !== undefined) l.stream = f.varint;
    else if (f.no === 4 && f.bytes) l.msg = Buffer.from(f.bytes);
  }
  return l;
}

export function decodeStatusResponse(buf: Buffer): BuildkitStatus {
  const status: BuildkitStatus = { vertexes: [], logs: [] };
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) status.vertexes.push(decodeVertex(f.bytes));
    else if (f.no === 3 && f.bytes) status.logs.push(decodeLog(f.bytes));
  }
  return status;
}

/**
 * Turns the raw build response stream into log lines, and remembers what a failure report needs:
 * the daemon's error, vertex errors and the last lines of output.
 */
export class BuildProgress {
  /** Daemon-level error (`{"error": ...}`), set when the build failed. */
  error: string | undefined;
  /** Image id announced by `moby.image.id`. */
  imageId: string | undefined;
  readonly vertexErrors: string[] = [];
  private readonly tail: string[] = [];
  private pendingJson = '';
  private readonly partialLines = new Map<string, string>();
  private readonly announced = new Set<string>();

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly tailSize = 200,
  ) {}

  /** Feed a chunk of the HTTP response body. */
  push(chunk: Buffer | string): void {
    this.pendingJson += chunk.toString();
    const lines = this.pendingJson.split('\n');
    this.pendingJson = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) this.handleJson(l);
  }

  /** Call at end of stream: flushes partial JSON and partial log lines. */
  end(): void {
    if (this.pendingJson.trim()) this.handleJson(this.pendingJson);
    this.pendingJson = '';
    for (const rest of this.partialLines.values()) if (rest) this.emit(rest);
    this.partialLines.clear();
  }

  /** Last lines of output, oldest first. */
  lastLines(): string[] {
    return [...this.tail];
  }

  private emit(line: string): void {
    this.tail.push(line);
    if (this.tail.length > this.tailSize) this.tail.shift();
    this.onLine(line);
  }

  private handleJson(text: string): void {
    let msg: { id?: string; aux?: unknown; stream?: string; error?: string; errorDetail?: { message?: string } };
    try {
      msg = JSON.parse(text);
    } catch {
      this.emit(text);
      return;
    }
    if (msg.error || msg.errorDetail?.message) {
      this.error = msg.errorDetail?.message ?? msg.error;
      return;
    }
    if (msg.id === 'moby.buildkit.trace' && typeof msg.aux === 'string') {
      this.handleStatus(decodeStatusResponse(Buffer.from(msg.aux, 'base64')));
    } else if (msg.id === 'moby.image.id' && msg.aux && typeof msg.aux === 'object') {
      const id = (msg.aux as { ID?: unknown }).ID;
      if (typeof id === 'string') this.imageId = id;
    } else if (typeof msg.stream === 'string') {
      // Classic builder output (should not happen with version 2, kept for robustness).
      for (const l of msg.stream.split(/\r?\n/)) if (l.trim()) this.emit(l);
    }
  }

  private handleStatus(status: BuildkitStatus): void {
    for (const v of status.vertexes) {
      // A vertex is re-sent on every state change; announce it once.
      if (v.name && (v.started || v.cached) && !this.announced.has(v.digest)) {
        this.announced.add(v.digest);
        this.emit(v.cached ? `=> CACHED ${v.name}` : `=> ${v.name}`);
      }
      if (v.error && !this.vertexErrors.includes(v.error)) {
        this.vertexErrors.push(v.error);
        // Not "ERROR:": that prefix is left to the build's own output (pip's errors).
        this.emit(`=> FAILED ${v.name}: ${v.error}`);
      }
    }
    for (const log of status.logs) {
      // Log messages are arbitrary chunks; reassemble lines per vertex and stream. pip's
      // progress output uses \r, which we treat as a line break.
      const key = `${log.vertex}/${log.stream}`;
      const text = (this.partialLines.get(key) ?? '') + log.msg.toString('utf8');
      const parts = text.split(/\r\n|\n|\r/);
      this.partialLines.set(key, parts.pop() ?? '');
      for (const p of parts) if (p.trim()) this.emit(p);
    }
  }
}
