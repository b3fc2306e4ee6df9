// Memory per queued task: 1,000,000 trivial tasks submitted at once to Poolscope (both backends)
// and the Node anchors, each in a fresh process; heap held per task right after submitting (the
// caller's array of results excluded), peak heap while they drain, and the drain time.
//
//   node bench/queued.mjs [--queued 1000000] [--all]
//
// By default Poolscope and piscina; --all adds tinypool and workerpool, which take minutes to
// drain a million tasks here (tinypool did not finish within the 300 s watchdog).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureAnchors, ensureBuilt } from './lib/setup.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const at = process.argv.indexOf('--queued');
const queued = at === -1 ? '1000000' : process.argv[at + 1];
const log = (s) => process.stderr.write(s);
const anchors = path.join(ROOT, '.bench', 'anchors');
ensureAnchors(anchors, log);
ensureBuilt(ROOT, false, log);

const pools = [
  ['poolscope', 'process'],
  ['poolscope', 'thread'],
  ['piscina', 'thread'],
  ...(process.argv.includes('--all')
    ? [
        ['tinypool', 'thread'],
        ['tinypool', 'process'],
        ['workerpool', 'thread'],
        ['workerpool', 'process'],
      ]
    : []),
];
const rows = [];
for (const [lib, mode] of pools) {
  log(`${lib} ${mode} ... `);
  const r = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      path.join(HERE, 'measure-node.mjs'),
      ...['--lib', lib, '--mode', mode, '--scenario', 'queued', '--queued', queued],
      ...['--watchdog-s', '300'],
    ],
    { env: { ...process.env, BENCH_ANCHORS_DIR: anchors }, encoding: 'utf8', timeout: 320_000 },
  );
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  const res = line ? JSON.parse(line.slice(7)) : { error: r.stderr?.slice(-300) || 'no result' };
  log(res.error ? `failed: ${res.error}\n` : 'ok\n');
  rows.push({ lib, mode, ...res });
}
console.log(
  `\n${Number(queued).toLocaleString('en-US')} tasks queued at once (${new Date().toISOString()})\n`,
);
console.log(
  '| Library | Mode | Heap per queued task (bytes) | Peak heap while draining (MB) | Drain (s) |',
);
console.log('|---|---|---:|---:|---:|');
for (const r of rows) {
  if (r.error)
    console.log(`| ${r.lib} | ${r.mode} | failed: ${String(r.error).split('\n')[0]} | | |`);
  else {
    console.log(
      `| ${r.lib} | ${r.mode} | ${Math.round(r.bytesPerTask)} | ${r.heapPeakMb.toFixed(0)} | ${(r.drainMs / 1000).toFixed(1)} |`,
    );
  }
}
