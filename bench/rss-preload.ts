/**
 * `node --import dist/bench/rss-preload.js bin/agent-update.js …`: at exit, writes the process's
 * peak resident memory (bytes) to the file named by $BENCH_RSS_FILE. Used by bench/run.ts (f).
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS * 1024)));
