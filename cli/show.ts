/** `poolscope show <trace.jsonl>`: the summary of a saved trace, replayed through the Store. */
import { resolve } from 'node:path';
import { Store } from '../core/trace/store';
import { readTrace as readTraceFile, TraceFileError } from '../core/trace/trace-file';
import { ansi, plain, summaryLines } from './render';
import { UsageError } from './run';

/** Feeds every line of a JSONL trace to a callback; a missing file is a usage error. */
export async function readTrace(
  file: string,
  onLine: (line: string, lineNo: number) => void,
): Promise<number> {
  try {
    return await readTraceFile(file, onLine);
  } catch (err) {
    throw err instanceof TraceFileError ? new UsageError(err.message) : err;
  }
}

export async function showTrace(file: string): Promise<number> {
  const store = new Store();
  const lines = await readTrace(file, (line, n) => store.applyLine(line, `line ${n}`));
  const style = process.stdout.isTTY && !process.env.NO_COLOR ? ansi : plain;
  const out: string[] = [];
  for (const run of store.runs.values()) out.push(...summaryLines(run, style), '');
  if (store.problemCount > 0) {
    out.push(`poolscope: ${store.problemCount} of ${lines} lines could not be used:`);
    for (const p of store.problems.slice(0, 10)) out.push(`  ${p}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  if (store.runs.size === 0) {
    process.stderr.write(
      `poolscope: ${resolve(file)} holds no Poolscope events: is it a trace file?\n`,
    );
    return 2;
  }
  return 0;
}
