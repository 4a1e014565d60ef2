/**
 * A fake Hetzner Cloud API: the servers endpoints (list with label_selector and pagination,
 * create, get, delete) with Hetzner's documented request and response shapes, its error format
 * {"error": {"code", "message", "details"}} and its RateLimit-* headers. Platform-neutral (only
 * Request/Response): the workerd tests call `handle` in-process, the integration test serves it
 * on 127.0.0.1 (fake-hetzner-server.ts) and boots a real runner for every server it creates.
 *
 * Knobs for failure cases: a bad token answers 401 `unauthorized`; `serverLimit` answers 403
 * `resource_limit_exceeded` past that many servers; `failNext` makes the next requests fail with
 * any status and code (429 `rate_limit_exceeded` for the rate-limit case).
 */

export interface FakeServer {
  id: number;
  name: string;
  status: 'initializing' | 'starting' | 'running' | 'stopping' | 'off' | 'deleting';
  created: string;
  labels: Record<string, string>;
  serverType: string;
  image: string;
  location: string;
  sshKeys: string[];
  userData: string | null;
}

export interface FakeFailure {
  status: number;
  code: string;
  message: string;
  /** Only requests with this method fail (default: any). */
  method?: string;
}

export interface FakeHetznerOptions {
  token: string;
  /** Servers the project may have; creating one more answers resource_limit_exceeded. */
  serverLimit?: number;
  /** Called after a server is created (the integration test boots its runner here). */
  onCreate?: (server: FakeServer) => void | Promise<void>;
  /** Called when a server is deleted (its runner is stopped: the machine is gone). */
  onDelete?: (server: FakeServer) => void | Promise<void>;
  now?: () => number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  code?: string;
}

const RATE_LIMIT = 3600;
const LABEL_PART = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
const HOSTNAME = /^(?=.{1,63}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i;

export class FakeHetzner {
  readonly servers = new Map<number, FakeServer>();
  readonly log: LoggedRequest[] = [];
  serverLimit: number;
  private nextId = 4_000_001;
  private nextAction = 9_000_001;
  private failures: FakeFailure[] = [];
  private remaining = RATE_LIMIT;

  constructor(private readonly opts: FakeHetznerOptions) {
    this.serverLimit = opts.serverLimit ?? 100;
  }

  /** For code that takes a fetch function. */
  readonly fetch = (req: Request): Promise<Response> => this.handle(req);

  /** The next `count` matching requests fail with this error. */
  failNext(count: number, failure: FakeFailure): void {
    for (let i = 0; i < count; i++) this.failures.push(failure);
  }

  /** Creates a server as if someone else had (for "foreign servers are never touched"). */
  addServer(s: Partial<FakeServer> & { name: string }): FakeServer {
    const server: FakeServer = { id: this.nextId++, status: 'running', created: this.iso(), labels: {}, serverType: 'cx22', image: 'debian-12', location: 'fsn1', sshKeys: [], userData: null, ...s };
    this.servers.set(server.id, server);
    return server;
  }

  private iso(): string {
    return new Date((this.opts.now ?? Date.now)()).toISOString().replace(/\.\d{3}Z$/, '+00:00');
  }

  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, '');
    const res = await this.route(req, url, path);
    let code: string | undefined;
    if (res.status >= 400) code = ((await res.clone().json()) as { error?: { code?: string } }).error?.code;
    this.log.push({ method: req.method, path: path + url.search, status: res.status, ...(code ? { code } : {}) });
    return res;
  }

  private json(status: number, body: unknown): Response {
    this.remaining = Math.max(0, this.remaining - 1);
    return new Response(JSON.stringify(body), {
      status,
      headers: {
        'content-type': 'application/json',
        'ratelimit-limit': String(RATE_LIMIT),
        'ratelimit-remaining': String(this.remaining),
        // Unix time at which the limit has fully refilled (one request per second).
        'ratelimit-reset': String(Math.floor(Date.now() / 1000) + (RATE_LIMIT - this.remaining)),
      },
    });
  }

  private error(status: number, code: string, message: string, details: unknown = null): Response {
    return this.json(status, { error: { code, message, details } });
  }

  private async route(req: Request, url: URL, path: string): Promise<Response> {
    if (req.headers.get('authorization') !== `Bearer ${this.opts.token}`) return this.error(401, 'unauthorized', 'unable to authenticate');
    const fi = this.failures.findIndex((f) => !f.method || f.method === req.method);
    if (fi >= 0) {
      const f = this.failures.splice(fi, 1)[0]!;
      if (f.status === 429) this.remaining = 0;
      return this.error(f.status, f.code, f.message);
    }
    if (path === '/v1/servers' && req.method === 'GET') return this.list(url);
    if (path === '/v1/servers' && req.method === 'POST') return this.create(req);
    const m = /^\/v1\/servers\/(\d+)$/.exec(path);
    if (m) {
      const server = this.servers.get(Number(m[1]));
      if (!server) return this.error(404, 'not_found', `server with ID '${m[1]}' not found`);
      if (req.method === 'GET') return this.json(200, { server: this.view(server) });
      if (req.method === 'DELETE') {
        this.servers.delete(server.id);
        await this.opts.onDelete?.(server);
        return this.json(200, { action: this.action('delete_server', server.id) });
      }
    }
    return this.error(404, 'not_found', `no route for ${req.method} ${path}`);
  }

  private list(url: URL): Response {
    const selector = url.searchParams.get('label_selector');
    const name = url.searchParams.get('name');
    const page = Math.max(1, Number(url.searchParams.get('page') ?? '1') || 1);
    const perPage = Math.min(50, Math.max(1, Number(url.searchParams.get('per_page') ?? '25') || 25));
    let all = [...this.servers.values()].sort((a, b) => a.id - b.id);
    if (selector) {
      const match = parseSelector(selector);
      if (!match) return this.error(400, 'invalid_input', `invalid label_selector: ${selector}`);
      all = all.filter((s) => match(s.labels));
    }
    if (name) all = all.filter((s) => s.name === name);
    const lastPage = Math.max(1, Math.ceil(all.length / perPage));
    const servers = all.slice((page - 1) * perPage, page * perPage).map((s) => this.view(s));
    return this.json(200, {
      servers,
      meta: { pagination: { page, per_page: perPage, previous_page: page > 1 ? page - 1 : null, next_page: page < lastPage ? page + 1 : null, last_page: lastPage, total_entries: all.length } },
    });
  }

  private async create(req: Request): Promise<Response> {
    let body: Record<string, unknown>;
    try {
      body = (await req.json()) as Record<string, unknown>;
    } catch {
      return this.error(400, 'json_error', 'invalid JSON in request body');
    }
    const fields: { name: string; messages: string[] }[] = [];
    const bad = (name: string, message: string) => fields.push({ name, messages: [message] });
    const name = body.name;
    if (typeof name !== 'string' || !HOSTNAME.test(name)) bad('name', 'must be a valid hostname');
    if (typeof body.server_type !== 'string' || !body.server_type) bad('server_type', 'is required');
    if (typeof body.image !== 'string' || !body.image) bad('image', 'is required');
    if (body.location !== undefined && typeof body.location !== 'string') bad('location', 'must be a string');
    const labels = (body.labels ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string' || !LABEL_PART.test(v) || !k) bad('labels', `invalid label ${k}`);
    if (body.user_data !== undefined && (typeof body.user_data !== 'string' || body.user_data.length > 32 * 1024)) bad('user_data', 'must be a string of at most 32 KiB');
    const sshKeys = body.ssh_keys ?? [];
    if (!Array.isArray(sshKeys)) bad('ssh_keys', 'must be an array');
    if (fields.length) return this.error(400, 'invalid_input', `invalid input in field '${fields[0]!.name}'`, { fields });
    if ([...this.servers.values()].some((s) => s.name === name)) return this.error(409, 'uniqueness_error', 'server name is already used', { fields: [{ name: 'name' }] });
    if (this.servers.size >= this.serverLimit) return this.error(403, 'resource_limit_exceeded', 'server limit exceeded');
    const server: FakeServer = {
      id: this.nextId++,
      name: name as string,
      status: 'initializing',
      created: this.iso(),
      labels: labels as Record<string, string>,
      serverType: body.server_type as string,
      image: body.image as string,
      location: (body.location as string | undefined) ?? 'fsn1',
      sshKeys: (sshKeys as unknown[]).map(String),
      userData: (body.user_data as string | undefined) ?? null,
    };
    this.servers.set(server.id, server);
    const view = this.view(server);
    server.status = body.start_after_create === false ? 'off' : 'running';
    await this.opts.onCreate?.(server);
    return this.json(201, {
      server: view,
      action: this.action('create_server', server.id),
      next_actions: body.start_after_create === false ? [] : [this.action('start_server', server.id)],
      root_password: sshKeys && (sshKeys as unknown[]).length ? null : 'YItygq1v3GYjjMomLaKc',
    });
  }

  private action(command: string, serverId: number) {
    return { id: this.nextAction++, command, status: 'running', progress: 0, started: this.iso(), finished: null, resources: [{ id: serverId, type: 'server' }], error: null };
  }

  /** A server as the API shows it (the fields we use, and enough of the rest to look the part). */
  view(s: FakeServer) {
    return {
      id: s.id,
      name: s.name,
      status: s.status,
      created: s.created,
      labels: s.labels,
      public_net: { ipv4: { id: s.id, ip: `203.0.113.${s.id % 250}`, blocked: false, dns_ptr: `static.${s.id}.example` }, ipv6: null, floating_ips: [], firewalls: [] },
      private_net: [],
      server_type: { id: 104, name: s.serverType, description: s.serverType.toUpperCase(), cores: 2, memory: 4, disk: 40, deprecated: false, storage_type: 'local', cpu_type: 'shared', architecture: 'x86' },
      datacenter: { id: 4, name: `${s.location}-dc14`, description: s.location, location: { id: 1, name: s.location, country: 'DE', city: 'Falkenstein', network_zone: 'eu-central' } },
      image: { id: 114690387, type: 'system', status: 'available', name: s.image, os_flavor: 'debian', os_version: '12' },
      iso: null,
      rescue_enabled: false,
      locked: false,
      backup_window: null,
      outgoing_traffic: 0,
      ingoing_traffic: 0,
      included_traffic: 21990232555520,
      protection: { delete: false, rebuild: false },
      load_balancers: [],
      volumes: [],
      placement_group: null,
      primary_disk_size: 40,
    };
  }
}

/**
 * Hetzner's label selector: comma-separated terms that must all hold — `k=v`, `k==v`, `k!=v`,
 * `k` (present), `!k` (absent), `k in (a,b)`, `k notin (a,b)`. Null when it does not parse.
 */
export function parseSelector(selector: string): ((labels: Record<string, string>) => boolean) | null {
  const terms: ((l: Record<string, string>) => boolean)[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const t = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/.exec(t))) {
      const [, k, op, v] = m as unknown as [string, string, string, string];
      terms.push(op === '!=' ? (l) => l[k] !== v : (l) => l[k] === v);
    } else if ((m = /^([^\s!]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t))) {
      const [, k, op, list] = m as unknown as [string, string, string, string];
      const vs = new Set(list.split(',').map((x) => x.trim()));
      terms.push(op === 'in' ? (l) => l[k] !== undefined && vs.has(l[k]!) : (l) => l[k] === undefined || !vs.has(l[k]!));
    } else if ((m = /^!([^\s=!]+)$/.exec(t))) {
      const k = m[1]!;
      terms.push((l) => l[k] === undefined);
    } else if ((m = /^([^\s=!]+)$/.exec(t))) {
      const k = m[1]!;
      terms.push((l) => l[k] !== undefined);
    } else return null;
  }
  return (l) => terms.every((f) => f(l));
}
