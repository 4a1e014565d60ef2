/** `rgrid webhook create|list|delete`: job templates that a signed HTTP POST turns into a batch. */
import { isId } from '../../shared/ids.js';
import { ApiError } from '../api/http.js';
import { CliError, usageError } from '../errors.js';
import { prepareWebhook, shellExample } from '../batch/webhook.js';
import { parseCpus, parseDuration, parseMemory, parsePairs, parsePositiveInt } from '../run/values.js';
import { uploadBlobs } from '../transfer/upload.js';
import { log, out } from '../ui.js';
import { API_FLAGS, JSON_FLAG, bool, list, str, type CommandSpec } from './_args.js';
import { apiContext, command, printJson } from './_shared.js';

const ACTIONS = ['create', 'list', 'delete'] as const;
const { bold, dim } = out;

export const spec: CommandSpec = {
  name: 'webhook',
  description: 'Webhooks: a signed HTTP POST runs a script over the files it sends (create, list, delete)',
  positionals: [
    { name: 'ACTION', description: `One of: ${ACTIONS.join(', ')}`, required: true },
    { name: 'ARGS', description: 'create: SCRIPT [-- SCRIPT_ARGS...] ({} stands for the input); delete: the webhook id', variadic: true },
  ],
  flags: {
    name: { type: 'string', valueHint: 'name', description: 'create: a name for the webhook (required)' },
    runtime: { type: 'string', valueHint: 'name', description: 'create: python3.11 (default for .py), python3.12, python3.10 or node20 (default for .js)' },
    requirements: { type: 'string', valueHint: 'file', description: 'create: requirements file (default: requirements.txt next to a Python script)' },
    parallel: { type: 'string', valueHint: 'n', description: "create: at most N of a delivery's executions at once" },
    'allow-host': { type: 'string', multiple: true, valueHint: 'host', description: 'create: a host whose https URLs deliveries may name as inputs' },
    env: { type: 'string', multiple: true, valueHint: 'K=V', description: 'create: environment variable for the script' },
    timeout: { type: 'string', valueHint: 'duration', description: 'create: per-execution timeout (default 1h)' },
    memory: { type: 'string', valueHint: 'size', description: 'create: memory limit (default 2g)' },
    cpus: { type: 'string', valueHint: 'n', description: 'create: CPU limit (default 1)' },
    pool: { type: 'string', valueHint: 'name', description: 'create: runner pool (default "default")' },
    ...JSON_FLAG,
    ...API_FLAGS,
  },
  examples: ['rgrid webhook create ingest.py --name ingest -- --in {}', 'rgrid webhook list', 'rgrid webhook delete wh_…'],
};

export default command(spec, async (args) => {
  const [action, ...rest] = args.positionals;
  if (!(ACTIONS as readonly string[]).includes(action ?? '')) throw usageError(`Unknown action "${action}"`, `Use one of: ${ACTIONS.join(', ')}.`);
  const json = bool(args, 'json');
  if (action === 'list') {
    if (rest.length) throw usageError(`Unexpected argument "${rest[0]}"`, 'Usage: rgrid webhook list');
    const { client } = await apiContext(args);
    const { webhooks } = await client.listWebhooks();
    if (json) printJson({ webhooks: webhooks.map((w) => ({ ...w, url: client.baseUrl + w.path })) });
    else if (!webhooks.length) process.stdout.write('No webhooks yet. Create one: rgrid webhook create SCRIPT --name NAME\n');
    else {
      const rows = webhooks.map((w) => [w.id, w.name, client.baseUrl + w.path, w.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), w.allowedHosts.join(',') || '-']);
      const header = ['ID', 'NAME', 'URL', 'CREATED', 'ALLOWED HOSTS'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
      process.stdout.write([dim(line(header)), ...rows.map(line)].join('\n') + '\n');
    }
    return;
  }
  if (action === 'delete') {
    const id = rest[0];
    if (!id || !isId('webhook', id) || rest.length > 1) throw usageError(`"${id ?? ''}" is not a webhook id`, 'Webhook ids look like wh_ followed by 24 letters and digits; `rgrid webhook list` shows yours.');
    const { client } = await apiContext(args);
    try {
      const { webhook } = await client.deleteWebhook(id);
      if (json) printJson({ webhook });
      else log.success(`Deleted webhook ${id} (${webhook.name}); deliveries to it are refused from now on (404).`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) throw new CliError(`No webhook ${id}`, { hint: '`rgrid webhook list` shows yours.', cause: err });
      throw err;
    }
    return;
  }

  // create
  const [script] = rest;
  if (!script) throw usageError('Missing SCRIPT', 'Usage: rgrid webhook create SCRIPT --name NAME [-- ARGS...]');
  const before = rest.slice(1, Math.max(1, args.verbatimFrom - 1));
  if (before.length) throw usageError(`Unexpected argument "${before[0]}"`, 'Arguments for the script go after --, e.g. `rgrid webhook create x.py --name n -- --in {}` ({} stands for the input file).');
  const name = str(args, 'name');
  if (!name) throw usageError('Missing --name', 'Usage: rgrid webhook create SCRIPT --name NAME');
  const limits: { timeoutSeconds?: number; memoryMb?: number; cpus?: number } = {};
  if (str(args, 'timeout') !== undefined) limits.timeoutSeconds = parseDuration(str(args, 'timeout')!);
  if (str(args, 'memory') !== undefined) limits.memoryMb = parseMemory(str(args, 'memory')!);
  if (str(args, 'cpus') !== undefined) limits.cpus = parseCpus(str(args, 'cpus')!);
  const rawParallel = str(args, 'parallel');
  const prepared = await prepareWebhook({
    script,
    name,
    runtime: str(args, 'runtime'),
    requirementsFile: str(args, 'requirements'),
    args: args.positionals.slice(Math.max(2, args.verbatimFrom)),
    env: parsePairs(list(args, 'env'), 'env', process.env),
    limits,
    pool: str(args, 'pool'),
    parallel: rawParallel === undefined ? undefined : parsePositiveInt(rawParallel, 'parallel', 10_000),
    allowHosts: list(args, 'allow-host'),
    cwd: process.cwd(),
  });
  const { client } = await apiContext(args);
  const created = await client.createWebhook(prepared.request);
  // The script is stored like any upload; deliveries check it is there before they start a batch.
  if (created.uploads.length) await uploadBlobs(created.uploads, new Map([[prepared.blob.sha256, prepared.blob]]));
  const url = client.baseUrl + created.webhook.path;
  if (json) {
    printJson({ webhook: created.webhook, url, secret: created.secret });
    return;
  }
  const w = created.webhook;
  const lines = [
    `${bold(`Created webhook ${w.id}`)} (${w.name}): runs ${prepared.request.template.script.name}${prepared.requirements ? ` with ${prepared.requirements}` : ''} once per input of each delivery.`,
    '',
    `  URL:     ${url}`,
    `  Secret:  ${created.secret}`,
    dim('  The secret is shown only now: store it with the sender. Lost it? Delete the webhook and create another.'),
    '',
    'Send a delivery (bash with openssl and curl):',
    '',
    ...shellExample(url, created.secret).split('\n').map((l) => `  ${l}`),
    '',
    dim('The answer names the new batch ({"batchId":"batch_…","items":1}); follow it with `rgrid status batch_…`.'),
    dim('Add "callback_url" to the body to get a signed POST with the summary when the batch finishes (docs/batches.md).'),
  ];
  process.stdout.write(lines.join('\n') + '\n');
});
