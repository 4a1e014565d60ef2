/**
 * Hetzner Cloud API client over fetch: list, create and delete servers. Thin by design
 * (STYLE.md #2): `HetznerApi.request` makes one call; the retry policy is one layer up in
 * `HetznerClient`, and each method states its retry budget.
 *
 * Hetzner answers errors as {"error": {"code", "message", "details"}} with codes such as
 * `unauthorized` (401, bad token), `rate_limit_exceeded` (429), `resource_limit_exceeded` (403,
 * a project quota) and `not_found` (404). Lists are paged: `meta.pagination.next_page`.
 */
import { z } from 'zod';

export const HETZNER_API_URL = 'https://api.hetzner.cloud/v1';

const HetznerErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

export const HetznerServer = z.looseObject({
  id: z.number().int(),
  name: z.string(),
  /** running, initializing, starting, stopping, off, deleting, migrating, rebuilding, unknown */
  status: z.string(),
  /** ISO 8601; billing starts here. */
  created: z.string(),
  labels: z.record(z.string(), z.string()).default({}),
});
export type HetznerServer = z.infer<typeof HetznerServer>;

const Action = z.looseObject({ id: z.number().int(), command: z.string(), status: z.string() });

const Pagination = z.looseObject({ page: z.number(), next_page: z.number().nullable() });
const ListServersResponse = z.looseObject({
  servers: z.array(HetznerServer),
  meta: z.looseObject({ pagination: Pagination }).optional(),
});
const CreateServerResponse = z.looseObject({ server: HetznerServer, action: Action });
const DeleteServerResponse = z.looseObject({ action: Action });

export interface CreateServerRequest {
  name: string;
  server_type: string;
  image: string;
  location?: string;
  ssh_keys?: string[];
  user_data?: string;
  labels?: Record<string, string>;
  start_after_create?: boolean;
}

/** A failed Hetzner call: the API's own code and message, or a network/format problem. */
export class HetznerError extends Error {
  constructor(
    readonly status: number,
    /** Hetzner's error code (`rate_limit_exceeded`, …), or `network` / `bad_response`. */
    readonly code: string,
    readonly apiMessage: string,
    readonly details?: unknown,
  ) {
    super(describe(status, code, apiMessage));
    this.name = 'HetznerError';
  }

  /** Rate limits, server-side trouble and lost connections may succeed when tried again. */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500 || this.code === 'network';
  }

  /** The project is at a quota (servers, cores, IPs…): creating more will fail until it is raised. */
  get quota(): boolean {
    return this.code === 'resource_limit_exceeded';
  }
}

/** An operator-facing sentence: what Hetzner said, and what to do about it. */
function describe(status: number, code: string, message: string): string {
  switch (code) {
    case 'unauthorized':
      return `Hetzner refused the API token (unauthorized: ${message}). Set a valid read/write token with \`wrangler secret put HETZNER_TOKEN\`.`;
    case 'token_readonly':
    case 'forbidden':
      return `Hetzner refused the request (${code}: ${message}). The HETZNER_TOKEN needs read/write permission.`;
    case 'resource_limit_exceeded':
      return `Hetzner project limit reached (resource_limit_exceeded: ${message}). Ask Hetzner to raise the limit, or lower the pool's maxServers.`;
    case 'rate_limit_exceeded':
      return `Hetzner rate limit exceeded (rate_limit_exceeded: ${message}). The next check tries again.`;
    case 'network':
      return `Hetzner API unreachable: ${message}`;
    case 'bad_response':
      return `unexpected answer from the Hetzner API (HTTP ${status}): ${message}`;
    default:
      return `Hetzner API error ${status} ${code}: ${message}`;
  }
}

export interface HetznerApiOptions {
  token: string;
  /** Default https://api.hetzner.cloud/v1; tests point it at a fake on loopback. */
  baseUrl?: string;
  /** Replaces global fetch (tests route requests to an in-process fake). */
  fetch?: (input: Request) => Promise<Response>;
}

/** One request, no retries. */
export class HetznerApi {
  readonly baseUrl: string;
  private readonly doFetch: (input: Request) => Promise<Response>;

  constructor(private readonly opts: HetznerApiOptions) {
    this.baseUrl = (opts.baseUrl ?? HETZNER_API_URL).replace(/\/+$/, '');
    this.doFetch = opts.fetch ?? ((r) => fetch(r));
  }

  async request<S extends z.ZodType>(method: 'GET' | 'POST' | 'DELETE', path: string, schema: S, body?: unknown): Promise<z.output<S>> {
    const req = new Request(this.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${this.opts.token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    let res: Response;
    try {
      res = await this.doFetch(req);
    } catch (err) {
      throw new HetznerError(0, 'network', (err as Error).message);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = HetznerErrorBody.safeParse(json);
      if (e.success) throw new HetznerError(res.status, e.data.error.code, e.data.error.message, e.data.error.details);
      throw new HetznerError(res.status, res.status === 401 ? 'unauthorized' : res.status === 429 ? 'rate_limit_exceeded' : 'bad_response', text.slice(0, 200) || res.statusText);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new HetznerError(res.status, 'bad_response', `${method} ${path}: ${i?.path.join('.') || 'body'}: ${i?.message}`);
    }
    return parsed.data;
  }
}

export interface RetryPolicy {
  /** Total tries, the first included. */
  tries: number;
  /** Wait before the first retry; doubles each time up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Hetzner's limit refills one request per second (3600/hour per project), so a short backoff is
 * enough after a 429; waiting for RateLimit-Reset (a full refill) would stall the check for long.
 */
export const DEFAULT_RETRY: RetryPolicy = { tries: 4, baseDelayMs: 1000, maxDelayMs: 8000 };

export class HetznerClient {
  readonly api: HetznerApi;
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  /** 429s seen (for the decision log and tests). */
  rateLimited = 0;

  constructor(opts: HetznerApiOptions & { retry?: Partial<RetryPolicy>; sleep?: (ms: number) => Promise<void> }) {
    this.api = new HetznerApi(opts);
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  private async withRetry<T>(fn: () => Promise<T>, retryOn: (e: HetznerError) => boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof HetznerError)) throw err;
        if (err.status === 429) this.rateLimited++;
        if (attempt >= this.retry.tries || !retryOn(err)) throw err;
        const delay = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
        await this.sleep(Math.round(delay * (0.75 + Math.random() * 0.25)));
      }
    }
  }

  /** All servers matching a label selector, every page. Retries: 429, 5xx and network errors. */
  async listServers(labelSelector: string): Promise<HetznerServer[]> {
    const out: HetznerServer[] = [];
    for (let page: number | null = 1; page !== null; ) {
      const path: string = `/servers?label_selector=${encodeURIComponent(labelSelector)}&per_page=50&page=${page}`;
      const res: z.output<typeof ListServersResponse> = await this.withRetry(() => this.api.request('GET', path, ListServersResponse), (e) => e.retryable);
      out.push(...res.servers);
      page = res.meta?.pagination.next_page ?? null;
    }
    return out;
  }

  /**
   * Creates a server. Retries: only 429 (the request was refused before anything happened); a
   * 5xx or a lost connection may have created it, and the next check finds it by its labels.
   */
  createServer(req: CreateServerRequest) {
    return this.withRetry(() => this.api.request('POST', '/servers', CreateServerResponse, req), (e) => e.status === 429);
  }

  /** Deletes a server; one already gone (404) counts as deleted (returns false). Retries: 429, 5xx, network. */
  async deleteServer(id: number): Promise<boolean> {
    try {
      await this.withRetry(() => this.api.request('DELETE', `/servers/${id}`, DeleteServerResponse), (e) => e.retryable);
      return true;
    } catch (err) {
      if (err instanceof HetznerError && err.status === 404) return false;
      throw err;
    }
  }
}
