#!/usr/bin/env node
// rgrid-runner: the runner daemon. TypeScript sources run through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../runner-agent/src/main.ts');
process.exitCode = await main();
process.exit();
