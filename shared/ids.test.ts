import { describe, expect, it } from 'vitest';
import { isId, newId, newSecret, visiblePrefix } from './ids.js';

describe('ids', () => {
  it('have their prefix and validate by kind', () => {
    const id = newId('execution');
    expect(id).toMatch(/^exec_[a-z2-7]{24}$/);
    expect(isId('execution', id)).toBe(true);
    expect(isId('batch', id)).toBe(false);
    expect(newId('runner')).toMatch(/^rnr_/);
    expect(newId('batch')).toMatch(/^batch_/);
  });

  it('are unique', () => {
    const ids = new Set(Array.from({ length: 10000 }, () => newId('execution')));
    expect(ids.size).toBe(10000);
  });

  it('secrets show only a short prefix', () => {
    const key = newSecret('apiKey');
    expect(key).toMatch(/^rgrid_sk_[a-z2-7]{40}$/);
    expect(visiblePrefix(key)).toBe(key.slice(0, 15));
  });
});
