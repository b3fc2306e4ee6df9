/** `poolscope export <trace.jsonl> --format perfetto [-o out.json]`: Trace Event JSON for Perfetto. */
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { exportPerfetto } from '../core/trace/perfetto';
import { UsageError } from './run';

export async function exportTrace(file: string, format: string, out?: string): Promise<number> {
  if (format !== 'perfetto')
    throw new UsageError(`unknown export format '${format}': the one there is: perfetto`);
  const input = resolve(file);
  if (!existsSync(input)) throw new UsageError(`no such trace file: ${input}`);
  const target = resolve(out ?? input.replace(/\.jsonl?$/, '') + '.perfetto.json');
  const output = createWriteStream(target);
  const lines = createInterface({ input: createReadStream(input), crlfDelay: Infinity });
  const summary = await exportPerfetto(lines, output);
  await new Promise<void>((done, fail) => {
    output.once('error', fail);
    output.end(done);
  });
  const t = summary.tasks;
  process.stderr.write(
    `poolscope: wrote ${target}: ${summary.traceEvents} trace events from ${summary.events} events; ` +
      `${summary.pools} pools, ${t.succeeded} tasks succeeded, ${t.failed} failed, ${summary.workerExits} worker exits` +
      (summary.unreadableLines ? `; ${summary.unreadableLines} unreadable lines skipped` : '') +
      '\n  open it in https://ui.perfetto.dev or chrome://tracing\n',
  );
  if (summary.events === 0) {
    process.stderr.write(`poolscope: ${input} holds no Poolscope events: is it a trace file?\n`);
    return 2;
  }
  return 0;
}
