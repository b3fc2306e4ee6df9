// The extension under a million events: runs test/vscode/flood.test.ts inside a real VS Code
// (code-server) with 333,334 tasks (3 events each) and prints what the extension host felt:
// its event-loop delay, round trips to the workbench while events poured in, memory, and how
// many times the views refreshed. Build first (npm run build).
// usage: node bench/vscode-flood.mjs [tasks] [--profile FILE]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const tasks = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 333_334);
// --profile FILE: also write a CPU profile of the extension host during the flood.
const at = process.argv.indexOf('--profile');
const profileFile = at > 0 ? resolve(process.argv[at + 1] ?? 'flood.cpuprofile') : '';
const dir = mkdtempSync(join(tmpdir(), 'poolscope-bench-'));
const reportFile = join(dir, 'report.json');
const root = new URL('..', import.meta.url).pathname;
const r = spawnSync(process.execPath, [join(root, 'scripts/vscode/run-suite.mjs')], {
  stdio: 'inherit',
  env: {
    ...process.env,
    POOLSCOPE_VSCODE_GREP: 'flood',
    POOLSCOPE_FLOOD_TASKS: String(tasks),
    POOLSCOPE_FLOOD_REPORT: reportFile,
    POOLSCOPE_FLOOD_BASELINE: '1',
    ...(profileFile ? { POOLSCOPE_FLOOD_PROFILE: profileFile } : {}),
    POOLSCOPE_VSCODE_TIMEOUT_MS: '900000',
  },
});
let report;
try {
  report = JSON.parse(readFileSync(reportFile, 'utf8'));
} catch {
  report = undefined;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (!report) {
  // After the finally above: process.exit inside the catch would skip it and leave the dir.
  console.error('no report: the flood run failed');
  process.exit(r.status || 1);
}
const f = (n, d = 1) => n.toFixed(d);
console.log(`
Extension host under a flood (${report.tasks.toLocaleString('en-US')} tasks, ${report.events.toLocaleString('en-US')} events, ${report.dropped} dropped)
  run time                       ${f(report.seconds)} s (${report.eventsPerSecond.toLocaleString('en-US')} events/s reduced)
  view refreshes                 ${report.refreshes} (${f(report.refreshes / report.seconds)} per second)
  extension host loop delay      p50 ${f(report.loopDelayMs.p50)} ms, p99 ${f(report.loopDelayMs.p99)} ms, max ${f(report.loopDelayMs.max)} ms
  round trip to the workbench    p50 ${f(report.roundTripMs.p50)} ms, p99 ${f(report.roundTripMs.p99)} ms, max ${f(report.roundTripMs.max)} ms (${report.roundTripMs.samples} samples)
  extension host heap            ${f(report.heapMb.before, 0)} MB before, ${f(report.heapMb.peak, 0)} MB peak; RSS ${f(report.rssMb, 0)} MB after`);
const b = report.baseline;
if (b) {
  console.log(`
The same script outside the extension (no trace), same probes: the machine's load alone
  run time                       ${f(b.seconds)} s (traced in the extension: ${f(report.seconds / b.seconds, 2)}×)
  extension host loop delay      p50 ${f(b.loopDelayMs.p50)} ms, p99 ${f(b.loopDelayMs.p99)} ms, max ${f(b.loopDelayMs.max)} ms
  round trip to the workbench    p50 ${f(b.roundTripMs.p50)} ms, p99 ${f(b.roundTripMs.p99)} ms, max ${f(b.roundTripMs.max)} ms (${b.roundTripMs.samples} samples)`);
}
