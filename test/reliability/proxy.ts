/**
 * A TCP proxy on 127.0.0.1 that a test can cut, to make the object store or the control plane
 * unreachable for a while without touching the product code. Clients are pointed at the proxy
 * (S3_ENDPOINT, --api-url); the bytes pass through unchanged, so presigned URLs signed for the
 * proxy's host:port still verify at the store behind it.
 *
 * Modes:
 * - `pass`: forward everything.
 * - `reset`: the peer is down — open connections are reset and new ones are reset on accept
 *   (clients see ECONNRESET / "other side closed" at once, as with a crashed or restarting peer).
 * - `blackhole`: packets are dropped — new connections are accepted but nothing is forwarded and
 *   nothing answers, and open connections stop forwarding (clients hang until their own timeout,
 *   as with a firewall DROP or a dead route). Healing resets the connections held meanwhile.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'reset' | 'blackhole';

export interface TcpProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  mode: ProxyMode;
  /** Connections accepted so far (all modes). */
  readonly accepted: number;
  cut(mode?: Exclude<ProxyMode, 'pass'>): void;
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream?: Socket;
  held: boolean;
}

export async function startTcpProxy(targetPort: number, opts: { port?: number } = {}): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'pass';
  let accepted = 0;

  const kill = (p: Pair) => {
    pairs.delete(p);
    // resetAndDestroy sends an RST, the way a dead peer answers; plain destroy would send FIN.
    if (!p.client.destroyed) p.client.resetAndDestroy();
    if (p.upstream && !p.upstream.destroyed) p.upstream.destroy();
  };

  const server: Server = createServer((client) => {
    accepted++;
    const pair: Pair = { client, held: false };
    pairs.add(pair);
    client.on('error', () => kill(pair));
    client.on('close', () => kill(pair));
    if (mode === 'reset') return kill(pair);
    if (mode === 'blackhole') {
      pair.held = true;
      client.pause();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    pair.upstream = upstream;
    // While held (blackhole), nothing from the far side reaches the client, not even a close.
    const upstreamGone = () => (pair.held ? upstream.destroy() : kill(pair));
    upstream.on('error', upstreamGone);
    upstream.on('close', upstreamGone);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    cut(m = 'reset') {
      mode = m;
      for (const p of [...pairs]) {
        if (m === 'reset') kill(p);
        else {
          // Stop forwarding in both directions: the connection stays open but goes silent.
          p.held = true;
          p.client.unpipe();
          p.upstream?.unpipe();
          p.client.pause();
          p.upstream?.pause();
        }
      }
    },
    heal() {
      mode = 'pass';
      for (const p of [...pairs]) if (p.held) kill(p);
    },
    async close() {
      for (const p of [...pairs]) kill(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
