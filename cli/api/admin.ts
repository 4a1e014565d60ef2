/** /admin/v1 (ADMIN_SECRET as the bearer token): used by `rgrid dev` to bootstrap its stack. */
import {
  CreateAccountResponse,
  CreateApiKeyResponse,
  CreatePoolResponse,
  CreateRegistrationTokenResponse,
} from '../../shared/api/admin.js';
import type { Http } from './http.js';

export function createAccount(http: Http, name: string) {
  return http.request('POST', '/admin/v1/accounts', { body: { name }, schema: CreateAccountResponse });
}

export function createApiKey(http: Http, accountId: string, name: string) {
  return http.request('POST', `/admin/v1/accounts/${encodeURIComponent(accountId)}/api-keys`, { body: { name }, schema: CreateApiKeyResponse });
}

export function createPool(http: Http, name: string) {
  return http.request('POST', '/admin/v1/pools', { body: { name }, schema: CreatePoolResponse });
}

export function createRegistrationToken(http: Http, pool: string) {
  return http.request('POST', `/admin/v1/pools/${encodeURIComponent(pool)}/registration-tokens`, { body: {}, schema: CreateRegistrationTokenResponse });
}
