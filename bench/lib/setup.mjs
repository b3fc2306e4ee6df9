// Everything run.mjs needs before measuring: the anchors installed into a
// scratch dir, Poolscope built, Python found, and facts about the machine.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ANCHOR_VERSIONS = { piscina: '5.3.2', workerpool: '10.0.3', tinypool: '2.2.0' };

function installedVersion(dir, pkg) {
  try {
    const f = path.join(dir, 'node_modules', pkg, 'package.json');
    return JSON.parse(fs.readFileSync(f, 'utf8')).version;
  } catch {
    return null;
  }
}

// import() of a bare name resolves from the importing file, with the ESM
// ("import") export conditions a user's `import 'piscina'` gets. A one-line
// module inside the scratch dir makes measure-node.mjs import exactly that.
function writeLoader(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'load.mjs');
  const text =
    '// Written by bench/lib/setup.mjs: imports an anchor as if from this directory.\nexport const load = (name) => import(name);\n';
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text);
}

/** Installs the pinned anchors into `dir` (its own package.json, so npm never touches the repo). */
export function ensureAnchors(dir, log) {
  writeLoader(dir);
  const missing = Object.entries(ANCHOR_VERSIONS).filter(
    ([p, v]) => installedVersion(dir, p) !== v,
  );
  if (missing.length === 0) return;
  fs.mkdirSync(dir, { recursive: true });
  const pkgJson = path.join(dir, 'package.json');
  if (!fs.existsSync(pkgJson)) {
    const pkg = {
      name: 'poolscope-bench-anchors',
      private: true,
      description: 'scratch dir of bench/run.mjs',
    };
    fs.writeFileSync(pkgJson, JSON.stringify(pkg, null, 2) + '\n');
  }
  const specs = Object.entries(ANCHOR_VERSIONS).map(([p, v]) => `${p}@${v}`);
  log(`installing anchors into ${dir}: ${specs.join(' ')}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(
    npm,
    ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', ...specs],
    {
      cwd: dir,
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    },
  );
  const still = Object.entries(ANCHOR_VERSIONS).filter(([p, v]) => installedVersion(dir, p) !== v);
  if (r.status !== 0 || still.length) {
    throw new Error(
      `npm install in ${dir} failed (status ${r.status}); missing: ${still.map(([p]) => p).join(', ')}`,
    );
  }
}

/** Builds Poolscope (node scripts/build.mjs) if dist/ is missing, or always with `force`. */
export function ensureBuilt(root, force, log) {
  const built = ['index.js', 'dummy.js'].every((f) =>
    fs.existsSync(path.join(root, 'dist/core', f)),
  );
  if (built && !force) return;
  log('building Poolscope: node scripts/build.mjs');
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 300_000,
  });
  if (r.status !== 0)
    throw new Error(`node scripts/build.mjs failed (status ${r.status}, signal ${r.signal})`);
}

/**
 * Copies the built Poolscope (package.json + dist/) into `dest`, so that a
 * rebuild of the repository during a run (which deletes dist/ first) cannot
 * break measurements or mix builds. Measurements import it through dest's
 * load.mjs, by the names users write ('poolscope', 'poolscope/dummy'), which
 * resolve by package self-reference inside the copy. Retries while dist/ is
 * incomplete (a build in progress).
 */
export async function snapshotPoolscope(root, dest, log) {
  const needed = ['index.js', 'dummy.js', 'worker/entry.js'].map((f) => path.join('dist/core', f));
  for (let attempt = 1; ; attempt++) {
    const revision = poolscopeRevision(root);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.mkdirSync(dest, { recursive: true });
    try {
      fs.cpSync(path.join(root, 'dist'), path.join(dest, 'dist'), { recursive: true });
      fs.copyFileSync(path.join(root, 'package.json'), path.join(dest, 'package.json'));
    } catch (e) {
      if (attempt >= 5) throw e;
    }
    if (needed.every((f) => fs.existsSync(path.join(dest, f)))) {
      fs.writeFileSync(
        path.join(dest, 'load.mjs'),
        '// Written by bench/lib/setup.mjs: imports Poolscope by its package names.\nexport const load = (name) => import(name);\n',
      );
      return revision;
    }
    if (attempt >= 5) throw new Error(`dist/ stays incomplete (missing ${needed.join(' or ')})`);
    log(`dist/ is incomplete (a build in progress?); retrying in 5 s\n`);
    await new Promise((r) => setTimeout(r, 5000));
  }
}

/** `python3 --version`, or null if it cannot be run. */
export function pythonVersion(py) {
  const r = spawnSync(py, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) return null;
  return (r.stdout || r.stderr).trim().replace(/^Python\s+/, '');
}

/** Which Poolscope was measured: git commit, uncommitted changes under core/, build time. */
export function poolscopeRevision(root) {
  const git = (...a) => spawnSync('git', a, { cwd: root, encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD');
  const dirty = git('status', '--porcelain', '--', 'core');
  let builtAt = null;
  try {
    builtAt = fs.statSync(path.join(root, 'dist/core/pool.js')).mtime.toISOString();
  } catch {
    // not built
  }
  const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
  return {
    version,
    commit: head.status === 0 ? head.stdout.trim() : null,
    coreDirty: dirty.status === 0 ? dirty.stdout.trim().length > 0 : null,
    builtAt,
  };
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? '?',
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}
