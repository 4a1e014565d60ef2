#!/usr/bin/env node
// The `rgrid` command; the CLI itself lives in ../cli/main.ts. No build step: _load.mjs bundles the
// TypeScript sources on first use and rebuilds when they change (or runs them through tsx).
import { loadEntry } from './_load.mjs';

const { main } = await loadEntry('cli/main.ts', 'rgrid-cli');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Exit once stdout/stderr are flushed even if an idle keep-alive socket would hold the loop open.
setTimeout(() => process.exit(code), 100).unref();
