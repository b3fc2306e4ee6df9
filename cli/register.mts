/**
 * Loaded with `--import` into every script the CLI or the editor runs: TypeScript scripts
 * transpile as they load, and `import 'poolscope'` finds this copy when the script's project has
 * none. A script the editor started ends with the editor (POOLSCOPE_DIE_WITH_PARENT).
 */
import { createRequire, register } from 'node:module';

register(new URL('../core/worker/ts-hooks.mjs', import.meta.url));
process.setSourceMapsEnabled(true);

if (process.env.POOLSCOPE_DIE_WITH_PARENT) {
  delete process.env.POOLSCOPE_DIE_WITH_PARENT;
  const watch = createRequire(import.meta.url)('../core/worker/parent-watch.js') as {
    dieWithParent(): void;
  };
  watch.dieWithParent();
}
