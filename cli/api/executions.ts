/** /api/v1/executions: one function per call, no retries here (see client.ts for budgets). */
import {
  ArtifactResponse,
  CancelExecutionResponse,
  CreateExecutionResponse,
  ExecutionResponse,
  ListArtifactsResponse,
  ListExecutionsResponse,
  LogsResponse,
  SubmitExecutionResponse,
  type CreateExecutionRequest,
  type LogStream,
} from '../../shared/api/executions.js';
import type { ExecutionState } from '../../shared/lifecycle.js';
import type { Http } from './http.js';

const path = (id: string, rest = '') => `/api/v1/executions/${encodeURIComponent(id)}${rest}`;

export function create(http: Http, body: CreateExecutionRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/executions', { body, schema: CreateExecutionResponse, signal });
}

export function submit(http: Http, id: string, signal?: AbortSignal) {
  return http.request('POST', path(id, '/submit'), { schema: SubmitExecutionResponse, signal });
}

export function get(http: Http, id: string, signal?: AbortSignal) {
  return http.request('GET', path(id), { schema: ExecutionResponse, signal });
}

export function cancel(http: Http, id: string, signal?: AbortSignal) {
  return http.request('POST', path(id, '/cancel'), { schema: CancelExecutionResponse, signal });
}

export interface ListQuery {
  status?: ExecutionState;
  batch?: string;
  metadata?: string[];
  limit?: number;
  cursor?: string;
}

export function list(http: Http, q: ListQuery, signal?: AbortSignal) {
  return http.request('GET', '/api/v1/executions', { query: { ...q }, schema: ListExecutionsResponse, signal });
}

export function artifacts(http: Http, id: string, signal?: AbortSignal) {
  return http.request('GET', path(id, '/artifacts'), { schema: ListArtifactsResponse, signal });
}

/** One artifact with a fresh download URL; an expired one answers 404 "… expired on <date>". */
export function artifact(http: Http, id: string, artifactId: string, signal?: AbortSignal) {
  return http.request('GET', path(id, `/artifacts/${encodeURIComponent(artifactId)}`), { schema: ArtifactResponse, signal });
}

export interface LogsQuery {
  cursor?: string;
  stream?: LogStream;
  limit?: number;
}

export function logs(http: Http, id: string, q: LogsQuery, signal?: AbortSignal) {
  return http.request('GET', path(id, '/logs'), { query: { ...q }, schema: LogsResponse, signal });
}
