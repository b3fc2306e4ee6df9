/** Reading saved traces: JSONL, streamed line by line (a trace may be very large). */
import { createReadStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

export class TraceFileError extends Error {
  override name = 'TraceFileError';
}

/** Feeds every line of a JSONL trace to a callback; resolves to the number of lines. */
export async function readTrace(
  file: string,
  onLine: (line: string, lineNo: number) => void,
): Promise<number> {
  const path = resolve(file);
  if (!existsSync(path)) throw new TraceFileError(`no such trace file: ${path}`);
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) onLine(line, ++n);
  return n;
}
