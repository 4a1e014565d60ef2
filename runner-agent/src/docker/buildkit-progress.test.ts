import { describe, expect, it } from 'vitest';
import { BuildProgress, decodeStatusResponse } from './buildkit-progress.js';

// Minimal protobuf encoder, enough to build StatusResponse messages for the decoder.
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
};
const bytesField = (no: number, b: Buffer | string): Buffer => {
  const buf = Buffer.from(b);
  return Buffer.concat([Buffer.from([...varint(no * 8 + 2), ...varint(buf.length)]), buf]);
};
const varintField = (no: number, n: number): Buffer => Buffer.from([...varint(no * 8), ...varint(n)]);

const timestamp = Buffer.concat([varintField(1, 1_700_000_000), varintField(2, 5)]);
const vertex = (digest: string, name: string, extra: Buffer[] = []) =>
  bytesField(1, Buffer.concat([bytesField(1, digest), bytesField(2, 'sha256:input'), bytesField(3, name), ...extra]));
const log = (v: string, msg: string, stream = 1) =>
  bytesField(3, Buffer.concat([bytesField(1, v), bytesField(2, timestamp), varintField(3, stream), bytesField(4, msg)]));
const trace = (...parts: Buffer[]) =>
  JSON.stringify({ id: 'moby.buildkit.trace', aux: Buffer.concat(parts).toString('base64') }) + '\n';

describe('decodeStatusResponse', () => {
  it('decodes vertexes and logs and skips fields it does not know', () => {
    const status = decodeStatusResponse(
      Buffer.concat([
        vertex('sha256:a', '[2/3] RUN pip install', [bytesField(5, timestamp), varintField(4, 1), bytesField(7, 'boom')]),
        bytesField(2, Buffer.concat([bytesField(1, 'status-id'), varintField(4, 2 ** 40)])), // VertexStatus: ignored
        log('sha256:a', 'hello\n', 2),
      ]),
    );
    expect(status.vertexes).toEqual([
      { digest: 'sha256:a', name: '[2/3] RUN pip install', cached: true, started: true, completed: false, error: 'boom' },
    ]);
    expect(status.logs).toHaveLength(1);
    expect(status.logs[0]).toMatchObject({ vertex: 'sha256:a', stream: 2 });
    expect(status.logs[0]!.msg.toString()).toBe('hello\n');
  });
});

describe('BuildProgress', () => {
  it('reassembles log lines split across messages and JSON split across chunks', () => {
    const lines: string[] = [];
    const p = new BuildProgress((l) => lines.push(l));
    const body =
      trace(vertex('sha256:a', '[2/2] RUN pip install x', [bytesField(5, timestamp)])) +
      trace(log('sha256:a', 'Collecting x\nERROR: No matching distri')) +
      trace(log('sha256:a', 'bution found for x\r\nprogress 1\rprogress 2\n')) +
      trace(vertex('sha256:a', '[2/2] RUN pip install x', [bytesField(5, timestamp), bytesField(7, 'exit code: 1')])) +
      JSON.stringify({ errorDetail: { message: 'process did not complete successfully' }, error: 'x' }) +
      '\n';
    // Feed in awkward chunk sizes to exercise the JSON line buffering.
    for (let i = 0; i < body.length; i += 7) p.push(body.slice(i, i + 7));
    p.end();
    expect(lines).toEqual([
      '=> [2/2] RUN pip install x',
      'Collecting x',
      'ERROR: No matching distribution found for x',
      'progress 1',
      'progress 2',
      '=> FAILED [2/2] RUN pip install x: exit code: 1',
    ]);
    expect(p.error).toBe('process did not complete successfully');
    expect(p.vertexErrors).toEqual(['exit code: 1']);
  });

  it('records the image id', () => {
    const p = new BuildProgress(() => undefined);
    p.push(JSON.stringify({ id: 'moby.image.id', aux: { ID: 'sha256:abc' } }) + '\n');
    p.end();
    expect(p.imageId).toBe('sha256:abc');
    expect(p.error).toBeUndefined();
  });
});
