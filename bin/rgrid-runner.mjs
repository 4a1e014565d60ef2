#!/usr/bin/env node
// rgrid-runner: the runner daemon (../runner-agent/src/main.ts), loaded like bin/rgrid.mjs.
import { loadEntry } from './_load.mjs';

const { main } = await loadEntry('runner-agent/src/main.ts', 'rgrid-runner');
process.exitCode = await main();
process.exit();
