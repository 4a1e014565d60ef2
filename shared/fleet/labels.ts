/**
 * The labels that mark a Hetzner server as the autoscaler's own. Only servers carrying
 * `rgrid-managed=true` and `rgrid-pool=<pool>` are ever listed, drained or deleted by it; the
 * server's RGrid id rides along as `rgrid-server`, and its runner reports the same id as the
 * runner label `rgrid.server` when it registers, which is how a runner is matched to its server.
 */
export const FLEET_LABELS = {
  managed: 'rgrid-managed',
  pool: 'rgrid-pool',
  server: 'rgrid-server',
} as const;

/** Runner label (RGRID_RUNNER_LABELS) naming the server a runner runs on. */
export const RUNNER_SERVER_LABEL = 'rgrid.server';

/** Hetzner's rule for label values (and the name part of keys): 0-63 characters, alphanumeric at both ends. */
export const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
/** A key: an optional DNS-subdomain prefix and `/`, then a name like a value (but not empty). */
export const LABEL_KEY = /^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/** The labels every server of a pool carries; the label selector that lists exactly those. */
export function managedLabels(pool: string): Record<string, string> {
  return { [FLEET_LABELS.managed]: 'true', [FLEET_LABELS.pool]: pool };
}

export function managedSelector(pool: string): string {
  return Object.entries(managedLabels(pool))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/**
 * A server name Hetzner accepts (a hostname label, at most 63 characters) that is unique per
 * server: `rgrid-<pool>-<random part of the server id>`.
 */
export function serverName(pool: string, serverId: string): string {
  const suffix = serverId.slice(serverId.indexOf('_') + 1);
  const head = `rgrid-${pool}`.slice(0, 63 - suffix.length - 1).replace(/-+$/, '');
  return `${head}-${suffix}`;
}
