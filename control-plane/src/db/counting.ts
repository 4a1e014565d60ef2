/**
 * Counts D1 round trips (each statement run, each batch) per isolate, for the dispatch bench's
 * "D1 round trips per job". Costs an increment per call; nothing else changes.
 */
export const d1Counter = {
  roundTrips: 0,
  id: '',
  /** Drawn on first use: workerd allows no random values at module scope. */
  get isolate(): string {
    return (this.id ||= crypto.randomUUID());
  },
};

const RUNS = new Set(['run', 'all', 'first', 'raw']);

function countStatement(stmt: D1PreparedStatement): D1PreparedStatement {
  return new Proxy(stmt, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'bind') return (...args: unknown[]) => countStatement((value as (...a: unknown[]) => D1PreparedStatement).apply(target, args));
      if (RUNS.has(prop as string)) {
        return (...args: unknown[]) => {
          d1Counter.roundTrips++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return value.bind(target);
    },
  });
}

/** The same database, counted. Statements it prepares are counted when run, or once per batch. */
export function countingD1(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'prepare') return (sql: string) => countStatement(target.prepare(sql));
      if (prop === 'batch' || prop === 'exec') {
        return (...args: unknown[]) => {
          d1Counter.roundTrips++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return value.bind(target);
    },
  });
}
