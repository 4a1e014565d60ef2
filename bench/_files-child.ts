/**
 * One transfer through the CLI's own code, in its own process so that bench/files.ts can measure
 * this process's peak RSS (`/usr/bin/time -v`) the same way as curl's. Not a bench by itself.
 *
 *   node --import tsx bench/_files-child.ts put URL FILE SHA256 SIZE     # transfer/upload.ts (one PUT)
 *   node --import tsx bench/_files-child.ts get URL OUT_DIR SHA256 SIZE  # transfer/download.ts
 *
 * Prints {"ms": …} (the transfer alone, without the process start) on stdout.
 */
import type { Artifact } from '../shared/api/executions.js';
import { downloadArtifact } from '../cli/transfer/download.js';
import { Progress } from '../cli/transfer/progress.js';
import { uploadBlobs } from '../cli/transfer/upload.js';

const [op, url, path, sha256, sizeText] = process.argv.slice(2);
if (!op || !url || !path || !sha256 || !sizeText) throw new Error('usage: put|get URL PATH SHA256 SIZE');
const size = Number(sizeText);
const expiresAt = new Date(Date.now() + 3600_000).toISOString();
const quiet = () => new Progress({ verb: op === 'put' ? 'Uploading' : 'Downloading', write: () => {} });

const t0 = performance.now();
if (op === 'put') {
  await uploadBlobs([{ method: 'PUT', url, headers: {}, expiresAt, sha256 }], new Map([[sha256, { sha256, size, path, label: 'big.bin', encoding: 'identity' }]]), { progress: quiet() });
} else {
  const artifact: Artifact = { id: 'bench', kind: 'output', path: 'big.bin', size, sha256, contentType: 'application/octet-stream', encoding: 'identity', expiresAt, expired: false, download: { url, headers: {}, expiresAt } };
  await downloadArtifact(artifact, path, { progress: quiet() });
}
process.stdout.write(JSON.stringify({ ms: performance.now() - t0 }) + '\n');
