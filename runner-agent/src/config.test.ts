import { describe, expect, it } from 'vitest';
import { loadRunnerConfig } from './config.js';

describe('runner config', () => {
  it('reads flags over RGRID_RUNNER_* env over defaults', () => {
    const r = loadRunnerConfig({
      flags: { 'api-url': 'http://127.0.0.1:8787', slots: '3' },
      env: { RGRID_RUNNER_API_URL: 'http://127.0.0.1:1', RGRID_RUNNER_REGISTRATION_TOKEN: 'rgrid_reg_abcdefghij', RGRID_RUNNER_PIP_INDEX_URL: 'http://127.0.0.1:3141/simple/', RGRID_RUNNER_IMAGE_PYTHON3_11: 'my/python:3.11' },
    });
    expect(r.success).toBe(true);
    if (!r.success) return;
    expect(r.data.apiUrl).toBe('http://127.0.0.1:8787');
    expect(r.data.slots).toBe(3);
    expect(r.data.registrationToken).toBe('rgrid_reg_abcdefghij');
    expect(r.data.images['python3.11']).toBe('my/python:3.11');
    expect(r.data.images['node20']).toBe('node:20-slim');
    expect(r.data.pullImages).toBe(false);
  });

  it('rejects bad values with the field named', () => {
    const r = loadRunnerConfig({ flags: { 'api-url': 'not a url', slots: '0' }, env: {} });
    expect(r.success).toBe(false);
    if (r.success) return;
    const paths = r.error.issues.map((i) => i.path[0]);
    expect(paths).toEqual(expect.arrayContaining(['apiUrl', 'slots']));
  });
});
