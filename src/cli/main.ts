#!/usr/bin/env node
/**
 * The crimg command line, unbundled (dist/cli/main.js). The package's bin is the
 * bundled copy of the same program (dist/cli/crimg.cjs, see scripts/bundle.mjs).
 */
import { main } from './program.js';

await main(process.argv);
