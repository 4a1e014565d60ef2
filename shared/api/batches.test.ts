import { describe, expect, it } from 'vitest';
import { BatchItem, BatchItemsResponse, CreateBatchRequest } from './batches.js';

const sha = 'a'.repeat(64);

describe('BatchItem', () => {
  it('takes relative input names with folders (they name the output folder on download)', () => {
    for (const inputName of ['a.csv', 'data/a.csv', 'data/2024/jan.csv', '.hidden/x']) {
      expect(BatchItem.safeParse({ inputName }).success, inputName).toBe(true);
    }
  });

  it('refuses input names that would leave ./outputs or cannot be a folder', () => {
    for (const inputName of ['../etc/passwd', 'a/../../b', '/etc/passwd', 'a\u0000b', '..\\..\\x', 'a//b', './a', '.', '..', '', 'a/', 'd/'.repeat(600) + 'x']) {
      const r = BatchItem.safeParse({ inputName });
      expect(r.success, JSON.stringify(inputName)).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual(['inputName']);
    }
  });

  it('refuses inputs where one is a file another would be placed under, naming both', () => {
    const r = BatchItem.safeParse({ inputName: 'x', inputs: [{ path: 'a', sha256: sha, size: 1 }, { path: 'a/b', sha256: sha, size: 1 }] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['inputs']);
    expect(r.error!.issues[0]!.message).toMatch(/"a".*"a\/b"/);
  });

  it('refuses duplicate and reserved input paths, as an execution does', () => {
    expect(BatchItem.safeParse({ inputName: 'x', inputs: [{ path: 'a', sha256: sha, size: 1 }, { path: 'a', sha256: sha, size: 1 }] }).success).toBe(false);
    expect(BatchItem.safeParse({ inputName: 'x', inputs: [{ path: '.rgrid', sha256: sha, size: 1 }] }).success).toBe(false);
  });

  it('refuses a script named "." or ".." in the template', () => {
    for (const name of ['.', '..']) {
      const r = CreateBatchRequest.safeParse({ template: { script: { name, sha256: sha, size: 1 } } });
      expect(r.error?.issues[0]?.path).toEqual(['template', 'script', 'name']);
    }
  });
});

describe('BatchItemsResponse', () => {
  it('is what GET /api/v1/batches/{id}/items answers', () => {
    const items = [{ executionId: 'exec_aaaaaaaaaaaaaaaaaaaaaaaa', inputName: 'data/a.csv', status: 'queued' }];
    expect(BatchItemsResponse.parse({ items })).toEqual({ items });
    expect(BatchItemsResponse.safeParse({ items: [{ ...items[0], status: 'sleeping' }] }).success).toBe(false);
  });
});
