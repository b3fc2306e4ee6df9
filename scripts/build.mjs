// Builds the library: core/**/*.ts to CommonJS files in dist/core (one file per module, so
// `poolscope` and `poolscope/dummy` share one copy of each class), the worker's TypeScript
// hooks as ESM, and the type declarations with tsc.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const list = (dir) =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? list(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );

rmSync(join(root, 'dist'), { recursive: true, force: true });
rmSync(join(root, 'out'), { recursive: true, force: true });
const core = list('core');

/**
 * In esbuild's CommonJS output, `module.exports = __toCommonJS(x_exports)` makes a second object
 * whose every export is a getter reading `from[key]`: a lookup by a key that varies, which the
 * engine cannot make fast, and then `x_exports`' own getter. Code that reads an imported constant
 * or calls an imported function per task (`TaskKind.Apply`, `unmarshalArgs(...)`) paid for both,
 * cold and warm: about 8% of the CPU of a first burst of trivial tasks (bench/README.md). The
 * exports object is `x_exports` itself instead, marked as a module: each export is then one
 * getter of its own, which the engine inlines. Same exports, same live bindings.
 */
function plainExports(dirs) {
  const files = dirs.flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true })
      .filter((f) => f.endsWith('.js'))
      .map((f) => join(root, dir, f)),
  );
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (!text.includes('module.exports = __toCommonJS(')) continue;
    const plain = text.replace(
      /^module\.exports = __toCommonJS\(([\w$]+)\);$/m,
      'module.exports = __defProp($1, "__esModule", { value: true });',
    );
    if (plain === text || plain.includes('module.exports = __toCommonJS('))
      throw new Error(`${file}: esbuild's exports are not in the expected form; see plainExports`);
    writeFileSync(file, plain);
  }
}
const common = {
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  absWorkingDir: root,
};
await build({
  ...common,
  entryPoints: core,
  outdir: 'dist/core',
  outbase: 'core',
  format: 'cjs',
});
await build({
  ...common,
  entryPoints: ['core/worker/ts-hooks.mts'],
  outfile: 'dist/core/worker/ts-hooks.mjs',
  format: 'esm',
});
// The CLI: cli/*.ts to CommonJS in dist/cli, main.js with a shebang; register.mts as ESM.
await build({
  ...common,
  entryPoints: list('cli').filter((f) => f !== 'cli/main.ts'),
  outdir: 'dist/cli',
  outbase: 'cli',
  format: 'cjs',
});
await build({
  ...common,
  entryPoints: ['cli/main.ts'],
  outfile: 'dist/cli/main.js',
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
});
await build({
  ...common,
  entryPoints: ['cli/register.mts'],
  outfile: 'dist/cli/register.mjs',
  format: 'esm',
});
chmodSync(join(root, 'dist/cli/main.js'), 0o755);
plainExports(['dist/core', 'dist/cli']);
// The panel's UI: one browser bundle (and the CSS it imports) loaded by the webview.
if (existsSync(join(root, 'webview/main.ts'))) {
  await build({
    ...common,
    platform: 'browser',
    target: 'chrome114',
    entryPoints: ['webview/main.ts'],
    outfile: 'dist/webview/panel.js',
    bundle: true,
    format: 'iife',
  });
}
// The VS Code extension: one bundle (the Store and launcher included); `vscode` is the host's.
await build({
  ...common,
  entryPoints: ['extension/extension.ts'],
  outfile: 'dist/extension/extension.js',
  bundle: true,
  format: 'cjs',
  external: ['vscode'],
});
// Tests: TypeScript files to CommonJS, run by node's test runner from out/.
await build({
  ...common,
  entryPoints: list('test').filter(
    (f) =>
      !f.startsWith('test/fixtures') &&
      !f.startsWith('test/vscode') &&
      !f.startsWith('test/extension') &&
      !f.startsWith('test/webview'),
  ),
  outdir: 'out/test',
  outbase: 'test',
  format: 'cjs',
});
// Tests of the extension's vscode-free parts (panel feed, webview): bundled with them.
await build({
  ...common,
  entryPoints: [
    ...list('test/extension'),
    ...(existsSync(join(root, 'test/webview')) ? list('test/webview') : []),
  ],
  outdir: 'out/test',
  outbase: 'test',
  format: 'cjs',
  bundle: true,
  packages: 'external',
});
// The suites that run inside VS Code: bundled, with the host's `vscode` and mocha external.
await build({
  ...common,
  entryPoints: list('test/vscode'),
  outdir: 'out/test/vscode',
  outbase: 'test/vscode',
  format: 'cjs',
  bundle: true,
  external: ['vscode', 'mocha'],
});
execFileSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
// The protocol's JSON Schema, published for other producers and consumers.
const { protocolJsonSchema } = await import(join(root, 'dist/core/trace/protocol.js'));
writeFileSync(
  join(root, 'docs/protocol.schema.json'),
  `${JSON.stringify(protocolJsonSchema(), null, 2)}\n`,
);
