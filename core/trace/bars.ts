/**
 * Task bars for timelines: one row per task (worker, start, end, state, function), column-wise
 * in typed arrays, so 100,000 tasks cost a few megabytes. Rows carry the Store version of their
 * last change, so a view can send only what changed. Bounded: past `capacity` rows the oldest
 * half is dropped (and counted).
 */
import { grown } from './columns';

const NONE = -1;

export class BarTable {
  /** Function names, indexed by `fn`. */
  readonly fns: string[] = [];
  private readonly fnIndex = new Map<string, number>();
  length = 0;
  /** Rows dropped to stay under capacity, oldest first. */
  dropped = 0;
  task = new Int32Array(1024);
  worker = new Int32Array(1024);
  start = new Float64Array(1024);
  end = new Float64Array(1024);
  state = new Uint8Array(1024);
  fn = new Uint32Array(1024);
  version = new Uint32Array(1024);
  /** Row of each task id (NONE when absent), indexed by task id - idBase. */
  private rowOf = new Int32Array(1024).fill(NONE);
  private idBase = 0;

  constructor(private readonly capacity: number) {}

  /** The row of a task, created (queued, not started) when new. */
  row(task: number, version: number): number {
    const slot = task - this.idBase;
    if (slot >= 0 && slot < this.rowOf.length && this.rowOf[slot] !== NONE)
      return this.rowOf[slot]!;
    if (slot < 0) return NONE; // older than what is kept
    if (this.length === this.capacity) this.dropOldest();
    this.growRows(this.length + 1);
    this.growIndex(task - this.idBase + 1);
    const row = this.length++;
    this.task[row] = task;
    this.worker[row] = NONE;
    this.start[row] = NaN;
    this.end[row] = NaN;
    this.state[row] = 0;
    this.fn[row] = this.fnId('?');
    this.version[row] = version;
    this.rowOf[task - this.idBase] = row;
    return row;
  }

  fnId(name: string): number {
    let id = this.fnIndex.get(name);
    if (id === undefined) {
      id = this.fns.length;
      this.fns.push(name);
      this.fnIndex.set(name, id);
    }
    return id;
  }

  private growRows(n: number): void {
    if (n <= this.task.length) return;
    this.task = grown(this.task, n);
    this.worker = grown(this.worker, n);
    this.start = grown(this.start, n);
    this.end = grown(this.end, n);
    this.state = grown(this.state, n);
    this.fn = grown(this.fn, n);
    this.version = grown(this.version, n);
  }

  private growIndex(n: number): void {
    if (n <= this.rowOf.length) return;
    let size = this.rowOf.length;
    while (size < n) size *= 2;
    const b = new Int32Array(size).fill(NONE);
    b.set(this.rowOf);
    this.rowOf = b;
  }

  private dropOldest(): void {
    const cut = Math.max(1, this.length >> 1);
    const keep = this.length - cut;
    for (const a of [
      this.task,
      this.worker,
      this.start,
      this.end,
      this.state,
      this.fn,
      this.version,
    ]) {
      a.copyWithin(0, cut, this.length);
    }
    this.length = keep;
    this.dropped += cut;
    // Rebuild the index from the kept rows.
    this.idBase = keep > 0 ? Math.min(...this.task.subarray(0, keep)) : this.idBase;
    this.rowOf.fill(NONE);
    for (let r = 0; r < keep; r++) this.rowOf[this.task[r]! - this.idBase] = r;
  }
}
