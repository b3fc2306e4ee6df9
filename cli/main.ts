/**
 * The `poolscope` command: run a script with a live view of its pools, show a saved trace,
 * export a trace for Perfetto.
 */
import { parseArgs } from 'node:util';
import { runScript, UsageError } from './run';
import { exportTrace } from './export';
import { showTrace } from './show';

const USAGE = `Usage:
  poolscope run [--trace out.jsonl] [--live | --no-live] <script> [args…]
      Runs a .js, .mjs, .cjs or .ts script with a live view of its pools; exits with its exit code.
      A .py script runs under python3 with Poolscope's tap: an unmodified multiprocessing
      program's pools, processes and shared values, in the same view ($POOLSCOPE_PYTHON
      names another interpreter).
  poolscope show <trace.jsonl>
      Prints the summary of a saved trace.
  poolscope export <trace.jsonl> --format perfetto [-o out.json]
      Writes Trace Event JSON that Perfetto and chrome://tracing open.
  poolscope --help | --version

Exit codes: the script's own for run (128+N when killed by signal N); 2 for bad usage,
a missing script or trace file, or a file with no Poolscope events.`;

/** Options of `run` come before the script; everything after it is the script's. */
function splitRunArgs(argv: string[]): { options: string[]; script?: string; args: string[] } {
  const options: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return { options, script: argv[i + 1], args: argv.slice(i + 2) };
    if (!arg.startsWith('-')) return { options, script: arg, args: argv.slice(i + 1) };
    options.push(arg);
    if (arg === '--trace' && i + 1 < argv.length) options.push(argv[++i]!);
  }
  return { options, args: [] };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const { options, script, args } = splitRunArgs(rest);
      const { values } = parseArgs({
        args: options,
        options: {
          trace: { type: 'string' },
          live: { type: 'boolean' },
          'no-live': { type: 'boolean' },
        },
        strict: true,
      });
      if (!script) throw new UsageError('run needs a script: poolscope run <script> [args…]');
      const live = values['no-live'] ? false : values.live ? true : undefined;
      return runScript({
        script,
        args,
        ...(values.trace ? { trace: values.trace } : {}),
        ...(live !== undefined ? { live } : {}),
      });
    }
    case 'show': {
      if (rest.length !== 1)
        throw new UsageError('show needs one trace file: poolscope show <trace.jsonl>');
      return showTrace(rest[0]!);
    }
    case 'export': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: {
          format: { type: 'string', default: 'perfetto' },
          output: { type: 'string', short: 'o' },
        },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) {
        throw new UsageError(
          'export needs one trace file: poolscope export <trace.jsonl> --format perfetto',
        );
      }
      return exportTrace(positionals[0]!, values.format!, values.output);
    }
    case '--version':
    case '-v': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      process.stdout.write(`${(require('../../package.json') as { version: string }).version}\n`);
      return 0;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(`poolscope: ${(err as Error).message}\n\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`poolscope: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 70;
    }
  },
);
