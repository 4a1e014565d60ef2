/** `rgrid login --api-url URL --api-key KEY`: verify a key and store it for later commands. */
import { ApiError } from '../api/http.js';
import { configDir, writeConfigFile } from '../config.js';
import { CLI_EXIT, CliError, usageError } from '../errors.js';
import { log } from '../ui.js';
import { API_FLAGS, str, type CommandSpec } from './_args.js';
import { apiContext, command } from './_shared.js';

export const spec: CommandSpec = {
  name: 'login',
  description: 'Check an API key against the control plane and save it (with the URL) in the config file',
  positionals: [],
  flags: { ...API_FLAGS },
  examples: ['rgrid login --api-url https://rgrid.example.com --api-key rgrid_sk_…'],
};

export default command(spec, async (args) => {
  if (!str(args, 'api-key') && !process.env.RGRID_API_KEY) {
    throw usageError('Missing --api-key', 'Usage: rgrid login --api-url URL --api-key KEY (the URL defaults to the local stack).');
  }
  const { client, config } = await apiContext(args);
  let who;
  try {
    who = await client.whoami();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      throw new CliError(`${config.apiUrl} refused the API key: ${err.message}`, { hint: 'Check the key (it starts with rgrid_sk_); nothing was saved.', exitCode: CLI_EXIT.auth, cause: err });
    }
    throw err;
  }
  const path = await writeConfigFile(configDir(process.env), { apiUrl: config.apiUrl, apiKey: config.apiKey });
  log.success(`Logged in to ${config.apiUrl} as ${who.account.name} (key ${who.apiKey.prefix}…)`);
  log.info(`Saved to ${path} (readable only by you).`);
});
