/**
 * Loaded with `--import` into every script the CLI runs: TypeScript scripts transpile as they
 * load, and `import 'poolscope'` finds this copy when the script's project has none.
 */
import { register } from 'node:module';

register(new URL('../core/worker/ts-hooks.mjs', import.meta.url));
process.setSourceMapsEnabled(true);
