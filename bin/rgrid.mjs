#!/usr/bin/env node
// The `rgrid` command. tsx compiles the TypeScript sources on the fly (no build step); the CLI
// itself lives in ../cli/main.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Exit once stdout/stderr are flushed even if an idle keep-alive socket would hold the loop open.
setTimeout(() => process.exit(code), 100).unref();
