/**
 * Shared objects in the trace: each one created while a sink is attached is announced
 * (`shared.created`) and then sampled every POOLSCOPE_SAMPLE_MS milliseconds (default 100),
 * emitting `shared.sampled` only when what it shows has changed. Objects are held weakly: the
 * sampler never keeps one alive. Large arrays are sampled as a summary plus a window.
 */
import { tracer, type Tracer } from './emitter';
import { jsonSafe } from './error-info';

/** What a shared object shows the sampler: its current state, JSON-safe, and its contention. */
export interface Sampled {
  sample(): { value: unknown; contention?: number };
}

interface Entry {
  id: string;
  ref: WeakRef<Sampled>;
  last: string;
}

const WINDOW = 16;
let next = 1;
const entries: Entry[] = [];
let timer: NodeJS.Timeout | undefined;

function sampleAll(t: Tracer): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    const obj = entry.ref.deref();
    if (!obj) {
      entries.splice(i, 1);
      continue;
    }
    const { value, contention } = obj.sample();
    const safe = jsonSafe(value);
    const key = JSON.stringify([safe, contention]);
    if (key === entry.last) continue;
    entry.last = key;
    t.emit('shared.sampled', {
      id: entry.id,
      value: safe,
      ...(contention !== undefined ? { contention } : {}),
    });
  }
}

function creator(): string | undefined {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder);
  const frame = holder.stack
    ?.split('\n')
    .slice(1)
    .map((l) => l.trim())
    .find(
      (l) =>
        !l.includes('/core/shared/') && !l.includes('/core/trace/') && !l.startsWith('at new '),
    );
  if (!frame) return undefined;
  // "at fn (file:line:col)" -> "file:line:col"; "at file:line:col" -> the same.
  return /\(([^)]+)\)$/.exec(frame)?.[1] ?? frame.replace(/^at /, '');
}

/** Called by every shared object's constructor; does nothing without a sink. */
export function announceShared(
  obj: Sampled,
  kind: string,
  ctype: string,
  length: number,
  lock: boolean,
): void {
  const t = tracer;
  if (!t) return;
  const id = `${process.pid}:${next++}`;
  const where = creator();
  t.emit('shared.created', { id, kind, ctype, length, lock, ...(where ? { creator: where } : {}) });
  entries.push({ id, ref: new WeakRef(obj), last: '' });
  sampleAll(t);
  if (!timer) {
    const ms = Number(process.env.POOLSCOPE_SAMPLE_MS) || 100;
    timer = setInterval(() => sampleAll(t), ms);
    timer.unref();
    // The last values, as the program ends (the emitter has flushed once already by then).
    process.on('exit', () => {
      sampleAll(t);
      t.flushSync();
    });
  }
}

/** An array's sample: its length, its first items, and the range of numeric values. */
export function summarize(items: unknown[]): unknown {
  if (items.length <= WINDOW) return items;
  let min: number | bigint | undefined;
  let max: number | bigint | undefined;
  for (const v of items) {
    if (typeof v !== 'number' && typeof v !== 'bigint') continue;
    if (min === undefined || v < min) min = v;
    if (max === undefined || v > max) max = v;
  }
  return { length: items.length, window: items.slice(0, WINDOW), min, max };
}
