#!/usr/bin/env node
// Command-line tool of annolive: import, export and watch. Run with --help for usage.
import { main } from '../src/cli.js';

process.exitCode = await main(process.argv.slice(2));
