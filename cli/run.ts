/**
 * `poolscope run <script> [args…]`: runs a script in its own `node` with a trace sink attached,
 * shows its pools live, prints a summary, and exits with the script's exit code.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { clearScreenDown, moveCursor } from 'node:readline';
import {
  checkScript,
  LaunchError,
  launcherEvent,
  launchTraced,
  newRunId,
} from '../core/trace/launch';
import type { TraceEvent } from '../core/trace/protocol';
import { Store } from '../core/trace/store';
import { ansi, liveLines, plain, progressLines, RateMeter, summaryLines } from './render';

export interface RunOptions {
  script: string;
  args: string[];
  /** Keep the trace in this JSONL file. */
  trace?: string;
  /** Force the live view on or off (default: on when stdout is a terminal). */
  live?: boolean;
}

const PACKAGE_ROOT = resolve(__dirname, '..', '..');
const REDRAW_MS = 250;
const PROGRESS_MS = 2000;

export class UsageError extends Error {}

/** Draws the live region below the program's own output, and redraws it in place. */
class LiveRegion {
  private height = 0;
  private partial = '';

  constructor(private readonly out: NodeJS.WriteStream) {}

  draw(lines: string[]): void {
    this.erase();
    const text = lines.join('\n');
    this.out.write(`${text}\n`);
    this.height = lines.length;
  }

  /** Program output goes above the region: erase it, write whole lines, redraw later. */
  write(chunk: string, redraw: () => void): void {
    const text = this.partial + chunk;
    const end = text.lastIndexOf('\n');
    if (end === -1) {
      this.partial = text;
      return;
    }
    this.partial = text.slice(end + 1);
    this.erase();
    this.out.write(text.slice(0, end + 1));
    redraw();
  }

  erase(): void {
    if (this.height === 0) return;
    moveCursor(this.out, 0, -this.height);
    clearScreenDown(this.out);
    this.height = 0;
  }

  flushPartial(): void {
    if (this.partial) this.out.write(`${this.partial}\n`);
    this.partial = '';
  }
}

function usable<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw err instanceof LaunchError ? new UsageError(err.message) : err;
  }
}

export async function runScript(options: RunOptions): Promise<number> {
  const script = usable(() => checkScript(options.script));
  const runId = newRunId();
  const store = new Store();
  const out = process.stdout;
  const live = options.live ?? Boolean(out.isTTY);
  const style = out.isTTY && !process.env.NO_COLOR ? ansi : plain;
  let traceFile: WriteStream | undefined;
  if (options.trace) {
    traceFile = createWriteStream(resolve(options.trace));
    await new Promise<void>((ok, fail) => {
      traceFile!.once('open', () => ok());
      traceFile!.once('error', (err) =>
        fail(new UsageError(`cannot write the trace file: ${err.message}`)),
      );
    });
  }
  const problems: string[] = [];
  const take = (line: string): void => {
    store.applyLine(line, 'trace');
    traceFile?.write(`${line}\n`);
  };
  let childPid = 0;
  /** Events the CLI itself produces: the run's start, end and output. */
  const own = (type: TraceEvent['type'], fields: Record<string, unknown>): void =>
    take(launcherEvent(runId, childPid, type, fields));
  const region = live ? new LiveRegion(out) : undefined;
  let draw = (): void => undefined;
  const targets = { stdout: process.stdout, stderr: process.stderr };
  const launched = await launchTraced(
    {
      script,
      args: options.args,
      ...(process.env.POOLSCOPE_PYTHON ? { python: process.env.POOLSCOPE_PYTHON } : {}),
      packageRoot: PACKAGE_ROOT,
      stdin: 'inherit',
      onLine: take,
      onProblem: (p) => problems.push(p),
      onOutput: (stream, chunk) => {
        const text = chunk.toString('utf8');
        own('output', { stream, text: text.length > 4000 ? `${text.slice(0, 4000)}…` : text });
        if (region) region.write(text, draw);
        else targets[stream].write(chunk);
      },
    },
    runId,
  ).catch((err: unknown) => {
    throw err instanceof LaunchError ? new UsageError(err.message) : err;
  });
  childPid = launched.pid;
  own('run.start', {
    argv: [script, ...options.args],
    cwd: process.cwd(),
    runtime: launched.runtime,
  });

  const meter = new RateMeter();
  draw = (): void => {
    const run = store.runs.get(runId);
    if (region && run) region.draw(liveLines(run, style, meter, Date.now(), out.columns || 100));
  };
  let lastVersion = -1;
  let lastProgress = '';
  const timer = setInterval(
    () => {
      if (store.version === lastVersion) return;
      lastVersion = store.version;
      if (region) draw();
      else {
        const run = store.runs.get(runId);
        const text = run ? progressLines(run).join('\n') : '';
        if (text && text !== lastProgress) {
          out.write(`${text}\n`);
          lastProgress = text;
        }
      }
    },
    live ? REDRAW_MS : PROGRESS_MS,
  );
  // Ctrl-C reaches the script and its workers too (same process group): wait for it to end.
  const interrupted = (): void => undefined;
  process.on('SIGINT', interrupted);
  process.on('SIGTERM', () => launched.child.kill('SIGTERM'));

  const { code, signal, status } = await launched.exited;
  clearInterval(timer);
  process.off('SIGINT', interrupted);
  const exitCode = signal ? 128 - status : code;
  own('run.end', { exitCode, signal, durationMs: 0 });
  region?.erase();
  region?.flushPartial();

  const run = store.runs.get(runId)!;
  out.write(`\n${summaryLines(run, style).join('\n')}\n`);
  for (const p of [...problems, ...store.problems].slice(0, 5))
    out.write(`poolscope: warning: ${p}\n`);
  if (traceFile) {
    await new Promise<void>((ok) => traceFile!.end(ok));
    out.write(`poolscope: trace written to ${resolve(options.trace!)}\n`);
  }
  return status;
}
