// Builds the shared-memory addon (native/) from source, offline, against this machine's Node
// headers. Run by `npm install` (the package's install script) and by `npm run build`. A failed
// build is reported and does not fail the install: the library then says, once, that
// cross-process shared memory is unavailable.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const strict = process.argv.includes('--strict');

function nodeGyp() {
  // npm ships node-gyp; find it next to the npm that runs us, or the npm on PATH.
  const candidates = [];
  if (process.env.npm_execpath)
    candidates.push(
      join(
        dirname(process.env.npm_execpath),
        '..',
        'node_modules',
        'node-gyp',
        'bin',
        'node-gyp.js',
      ),
    );
  const which = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (which)
    candidates.push(
      join(dirname(dirname(realpathSync(which))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    );
  return candidates.find((c) => existsSync(c));
}

function fail(message) {
  process.stderr.write(`poolscope: the shared-memory addon was not built: ${message}\n`);
  process.exit(strict ? 1 : 0);
}

if (process.platform !== 'linux') fail(`${process.platform} is not supported yet (Linux only)`);
const gyp = nodeGyp();
if (!gyp) fail('node-gyp was not found (it comes with npm)');
const args = [gyp, 'rebuild'];
// node-gyp cannot download headers on these machines: build against the installed ones.
if (!process.env.npm_config_nodedir && existsSync('/usr/include/node/common.gypi'))
  args.push('--nodedir=/usr');
const run = spawnSync(process.execPath, args, { cwd: join(root, 'native'), encoding: 'utf8' });
if (run.status !== 0)
  fail(`node-gyp failed:\n${(run.stderr || run.stdout).split('\n').slice(-15).join('\n')}`);
