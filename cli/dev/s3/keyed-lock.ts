// Serializes async sections per key. Commits of the same object key (PUT, complete, delete) must
// not interleave: each one replaces the key's metadata and then frees the blob it replaced, and
// two interleaved commits could free the blob the other one just published.
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      // Drop the entry once nobody queued behind us, so the map does not grow with every key.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
