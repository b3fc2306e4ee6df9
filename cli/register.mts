/**
 * Loaded with `--import` into every script the CLI or the editor runs: TypeScript scripts
 * transpile as they load, and `import 'poolscope'` finds this copy when the script's project has
 * none. A script the editor started ends with the editor (POOLSCOPE_DIE_WITH_PARENT).
 */
import { createRequire, register } from 'node:module';

register(new URL('../core/worker/ts-hooks.mjs', import.meta.url));
process.setSourceMapsEnabled(true);

// A program started by someone else (a debugger) reports its own exit code to the trace.
if (process.env.POOLSCOPE_REPORT_EXIT) {
  delete process.env.POOLSCOPE_REPORT_EXIT;
  const { tracer } = createRequire(import.meta.url)('../core/trace/emitter.js') as {
    tracer?: {
      emit(type: 'run.end', fields: { exitCode: number; signal: null; durationMs: number }): void;
      flushSync(): void;
    };
  };
  process.on('exit', (code) => {
    tracer?.emit('run.end', { exitCode: code, signal: null, durationMs: performance.now() });
    tracer?.flushSync();
  });
}

if (process.env.POOLSCOPE_DIE_WITH_PARENT) {
  delete process.env.POOLSCOPE_DIE_WITH_PARENT;
  const watch = createRequire(import.meta.url)('../core/worker/parent-watch.js') as {
    dieWithParent(): void;
  };
  watch.dieWithParent();
}
