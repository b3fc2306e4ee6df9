/**
 * Shared memory that another process holds, for a worker process without the addon: every
 * access is a request to that process's server (server.ts), made synchronous here. The requesting
 * thread writes the frame into a mailbox it shares with a helper thread (helper.ts), which does
 * the socket I/O, and blocks in `Atomics.wait` until the reply is in the mailbox. One helper,
 * one connection, one request in flight per thread and server.
 *
 * A round trip is four thread wake-ups and two socket hops (100–300 µs on the busy 2-core machine
 * this was measured on), so the client saves the ones the memory model lets it save:
 *
 * - Plain stores are held back and sent ahead of the thread's next request to the same server,
 *   in the same frame, so they land before it, in order: an RLock's depth (`Words.set`), and
 *   the data a Value or Array writes (values.ts publishes them itself, with `flush`, when no
 *   lock's release will).
 * - A plain read of a word this thread itself stored since its last atomic operation returns
 *   what it stored: with no synchronization in between, no other thread's store can have
 *   happened after it without a data race.
 * - `holds(index, token)`, for a token only this thread stores, is answered from what this
 *   thread last stored in that word, ever.
 * - A lock is taken (`claim`) and released (`unclaim`) in one request each; a contended one
 *   sleeps in the server, which takes it for this thread as it wakes (`claimOrWait`).
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { ByteView } from '../ctypes';
import { SharedMemoryGoneError } from '../../errors';
import type { WaitResult, Words } from '../words';
import {
  CHUNK,
  CLAIMED,
  GONE,
  IDLE,
  MAILBOX_BYTES,
  MAILBOX_DATA,
  MAILBOX_LENGTH,
  MAILBOX_STATE,
  Op,
  OP_HEAD,
  REPLY,
  REQUEST,
  STARTING,
  Status,
  WAIT_NOT_EQUAL,
  WAIT_OK,
  type HelperData,
} from './protocol';

/** How a remote memory travels: where its server listens, the proof, and which buffer. */
export interface RemoteRef {
  address: string;
  /** 32 random bytes, hex: a connection that cannot show them is refused. */
  token: string;
  /** The process that holds the memory. */
  pid: number;
  id: number;
  size: number;
}

/** dist/core/shared/remote/helper.js */
const HELPER = join(__dirname, 'helper.js');
/** How long a new helper may take to start and connect before the thread gives up. */
const START_MS = 15_000;
/** Room for held-back ops: more are sent at once, with a NOP. */
const HELD_BYTES = MAILBOX_BYTES - CHUNK - 64;

/**
 * Bumped by every atomic operation of this thread on remote memory: a plain read may reuse a
 * value this thread stored only while it is unchanged.
 */
let generation = 0;

/** What this thread knows of one attached memory. */
export interface Attachment {
  /** Live RemoteMemory objects over it here (the server hears DETACH when none is left). */
  count: number;
  /** Words this thread stored since `generation` was `storedAt`: byte offset -> value. */
  stored: Map<number, number>;
  storedAt: number;
  /** The last value this thread stored in each word, ever (for `holds`). */
  last: Map<number, number>;
}

const clients = new Map<string, RemoteClient>();

export class RemoteClient {
  private readonly state: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  /** Where the frame being built ends (after its u32 length). */
  private at = 4;
  /** Held-back ops (SET, WRITE, DETACH), encoded, in order: they start the next frame. */
  private readonly held = new Uint8Array(HELD_BYTES);
  private readonly heldView = new DataView(this.held.buffer);
  private heldLength = 0;
  private readonly attachments = new Map<number, Attachment>();
  private goneReason: string | undefined;

  constructor(
    readonly address: string,
    token: string,
    readonly ownerPid: number,
  ) {
    const mailbox = new SharedArrayBuffer(MAILBOX_DATA + MAILBOX_BYTES);
    this.state = new Int32Array(mailbox, 0, 2);
    this.data = new Uint8Array(mailbox, MAILBOX_DATA, MAILBOX_BYTES);
    this.view = new DataView(mailbox, MAILBOX_DATA, MAILBOX_BYTES);
    const workerData: HelperData = { address, token, ownerPid, mailbox };
    // No flags of this program's (a TypeScript loader, --inspect) in a thread that only moves bytes.
    const helper = new Worker(HELPER, { workerData, execArgv: [] });
    // Its failures arrive through the mailbox (GONE).
    helper.on('error', () => undefined);
    // Never keeps this process alive.
    helper.unref();
    // The thread starts and connects by itself: this one may block meanwhile.
    const until = performance.now() + START_MS;
    while (Atomics.load(this.state, MAILBOX_STATE) === STARTING) {
      const left = until - performance.now();
      if (left <= 0) {
        void helper.terminate();
        this.goneReason = `its helper thread did not connect within ${START_MS / 1000} s`;
        break;
      }
      Atomics.wait(this.state, MAILBOX_STATE, STARTING, left);
    }
    this.checkGone();
  }

  /** This thread's client for the server at `ref.address`, started on first use. */
  static for(ref: RemoteRef): RemoteClient {
    let client = clients.get(ref.address);
    if (!client || client.gone) {
      // Servers that ended (an owner's server stops when it serves nothing) are forgotten here.
      for (const [address, other] of clients) if (other.gone) clients.delete(address);
      client = new RemoteClient(ref.address, ref.token, ref.pid);
      clients.set(ref.address, client);
    }
    return client;
  }

  get gone(): boolean {
    return this.goneReason !== undefined || Atomics.load(this.state, MAILBOX_STATE) === GONE;
  }

  private checkGone(): void {
    if (Atomics.load(this.state, MAILBOX_STATE) === GONE && this.goneReason === undefined) {
      const length = Atomics.load(this.state, MAILBOX_LENGTH);
      this.goneReason = Buffer.from(this.data.subarray(0, length)).toString();
    }
    if (this.goneReason !== undefined) {
      if (clients.get(this.address) === this) clients.delete(this.address);
      throw new SharedMemoryGoneError(
        `shared memory from process ${this.ownerPid} is out of reach: ${this.goneReason} ` +
          '(without the addon, worker processes reach shared objects through the process that made them)',
        this.ownerPid,
      );
    }
  }

  // --- Building a frame in the mailbox: held-back ops first, then one op. ---

  private head(op: Op, id: number, offset: number): void {
    this.checkGone();
    if (this.heldLength > 0) {
      this.data.set(this.held.subarray(0, this.heldLength), this.at);
      this.at += this.heldLength;
      this.heldLength = 0;
    }
    this.data[this.at] = op;
    this.view.setUint32(this.at + 1, id, true);
    this.view.setUint32(this.at + 5, offset, true);
    this.at += OP_HEAD;
  }

  /** Holds back an op of `args` bytes; returns where its arguments go in `held`. */
  private hold(op: Op, id: number, offset: number, args: number): number {
    if (this.heldLength + OP_HEAD + args > HELD_BYTES) this.flush();
    const at = this.heldLength;
    this.held[at] = op;
    this.heldView.setUint32(at + 1, id, true);
    this.heldView.setUint32(at + 5, offset, true);
    this.heldLength += OP_HEAD + args;
    return at + OP_HEAD;
  }

  /** Sends what this thread held back, if anything. */
  flush(): void {
    if (this.heldLength === 0) return;
    this.head(Op.NOP, 0, 0);
    this.value();
  }

  private i32(v: number): void {
    this.view.setInt32(this.at, v, true);
    this.at += 4;
  }

  /** Sends the frame, waits for its reply, and leaves the reply in the mailbox. */
  private roundTrip(): void {
    this.view.setUint32(0, this.at - 4, true);
    this.at = 4;
    const state = this.state;
    Atomics.store(state, MAILBOX_STATE, REQUEST);
    Atomics.notify(state, MAILBOX_STATE, 1);
    let s: number;
    while ((s = Atomics.load(state, MAILBOX_STATE)) === REQUEST)
      Atomics.wait(state, MAILBOX_STATE, s);
    if (s !== REPLY) this.checkGone();
    Atomics.store(state, MAILBOX_STATE, IDLE);
    if (this.data[4] === Status.ERROR) {
      const length = this.view.getUint32(0, true) - 1;
      throw new Error(
        `shared memory request refused by process ${this.ownerPid}: ${Buffer.from(this.data.subarray(5, 5 + length)).toString()}`,
      );
    }
  }

  private value(): number {
    this.roundTrip();
    return this.view.getInt32(5, true);
  }

  // --- Operations ---

  attach(id: number): Attachment {
    let a = this.attachments.get(id);
    if (!a) {
      this.head(Op.ATTACH, id, 0);
      this.value();
      a = { count: 0, stored: new Map(), storedAt: generation, last: new Map() };
      this.attachments.set(id, a);
    }
    a.count++;
    return a;
  }

  /** A RemoteMemory over `id` was collected; the last one's DETACH goes with the next request. */
  detach(id: number): void {
    const a = this.attachments.get(id);
    if (!a || --a.count > 0) return;
    this.attachments.delete(id);
    try {
      if (!this.gone) this.hold(Op.DETACH, id, 0, 0);
    } catch {
      // Gone meanwhile: nothing is attached any more.
    }
  }

  /** An atomic operation on a word: `args` after the head; returns the reply's value. */
  atomic(op: Op, id: number, offset: number, ...args: number[]): number {
    generation++;
    this.head(op, id, offset);
    for (const v of args) this.i32(v);
    return this.value();
  }

  get(a: Attachment, id: number, offset: number): number {
    if (a.storedAt === generation) {
      const v = a.stored.get(offset);
      if (v !== undefined) return v;
    }
    this.head(Op.GET, id, offset);
    return this.value();
  }

  set(a: Attachment, id: number, offset: number, value: number): void {
    this.remember(a, offset, value);
    this.heldView.setInt32(this.hold(Op.SET, id, offset, 4), value, true);
  }

  /** Notes a plain store of this thread's (held back, or made by a claim on the server). */
  remember(a: Attachment, offset: number, value: number): void {
    if (a.storedAt !== generation) {
      a.stored.clear();
      a.storedAt = generation;
    }
    a.stored.set(offset, value);
    a.last.set(offset, value);
  }

  /** WAIT, or CLAIM_OR_WAIT with its i32 arguments before the timeout. */
  wait(
    op: typeof Op.WAIT | typeof Op.CLAIM_OR_WAIT,
    id: number,
    offset: number,
    args: number[],
    timeoutMs: number,
  ): 'claimed' | WaitResult {
    generation++;
    this.head(op, id, offset);
    for (const v of args) this.i32(v);
    this.view.setFloat64(this.at, timeoutMs, true);
    this.at += 8;
    const r = this.value();
    return r === WAIT_OK
      ? 'ok'
      : r === WAIT_NOT_EQUAL
        ? 'not-equal'
        : r === CLAIMED
          ? 'claimed'
          : 'timed-out';
  }

  read(id: number, offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let done = 0; done < length; done += CHUNK) {
      const n = Math.min(CHUNK, length - done);
      this.head(Op.READ, id, offset + done);
      this.view.setUint32(this.at, n, true);
      this.at += 4;
      this.roundTrip();
      out.set(this.data.subarray(5, 5 + n), done);
    }
    return out;
  }

  /** Held back (see the header) when it is small; large writes go at once, in chunks. */
  write(id: number, offset: number, bytes: Uint8Array): void {
    if (bytes.length <= 64) {
      const at = this.hold(Op.WRITE, id, offset, 4 + bytes.length);
      this.heldView.setUint32(at, bytes.length, true);
      this.held.set(bytes, at + 4);
      return;
    }
    for (let done = 0; done < bytes.length; done += CHUNK) {
      const n = Math.min(CHUNK, bytes.length - done);
      this.head(Op.WRITE, id, offset + done);
      this.view.setUint32(this.at, n, true);
      this.data.set(bytes.subarray(done, done + n), this.at + 4);
      this.at += 4 + n;
      this.roundTrip();
    }
  }
}

const detachWhenCollected = new FinalizationRegistry<{ client: RemoteClient; id: number }>(
  ({ client, id }) => client.detach(id),
);

/** Memory another process holds, as this thread reaches it. */
export class RemoteMemory {
  readonly kind = 'remote';
  /** @internal */
  readonly attachment: Attachment;

  constructor(
    readonly ref: RemoteRef,
    /** @internal */
    readonly client: RemoteClient,
  ) {
    this.attachment = client.attach(ref.id);
    detachWhenCollected.register(this, { client, id: ref.id });
  }

  get size(): number {
    return this.ref.size;
  }

  read(offset: number, length: number): Uint8Array {
    return this.client.read(this.ref.id, offset, length);
  }

  /** Held back when small: `flush` sends it. */
  write(offset: number, bytes: Uint8Array): void {
    this.client.write(this.ref.id, offset, bytes);
  }

  /** Sends the stores this thread held back (to every memory of the same server). */
  flush(): void {
    this.client.flush();
  }
}

/** Opens `ref` in this thread (connecting to its server on first use). */
export function openRemote(ref: RemoteRef): RemoteMemory {
  return new RemoteMemory(ref, RemoteClient.for(ref));
}

/** Words of remote memory: each operation a request (or none, see the header). */
export class RemoteWords implements Words {
  private readonly client: RemoteClient;
  private readonly id: number;
  private readonly a: Attachment;

  constructor(
    memory: RemoteMemory,
    /** Byte offset of word 0. */
    private readonly base: number,
  ) {
    this.client = memory.client;
    this.id = memory.ref.id;
    this.a = memory.attachment;
  }

  private at(index: number): number {
    return this.base + 4 * index;
  }

  load(index: number): number {
    return this.client.atomic(Op.LOAD, this.id, this.at(index));
  }

  store(index: number, value: number): void {
    this.client.atomic(Op.STORE, this.id, this.at(index), value);
  }

  add(index: number, value: number): number {
    return this.client.atomic(Op.ADD, this.id, this.at(index), value | 0);
  }

  exchange(index: number, value: number): number {
    return this.client.atomic(Op.EXCHANGE, this.id, this.at(index), value);
  }

  compareExchange(index: number, expected: number, replacement: number): number {
    return this.client.atomic(Op.COMPARE_EXCHANGE, this.id, this.at(index), expected, replacement);
  }

  get(index: number): number {
    return this.client.get(this.a, this.id, this.at(index));
  }

  set(index: number, value: number): void {
    this.client.set(this.a, this.id, this.at(index), value);
  }

  holds(index: number, token: number): boolean {
    return this.a.last.get(this.at(index)) === token;
  }

  wait(index: number, expected: number, timeoutMs: number): WaitResult {
    return this.client.wait(Op.WAIT, this.id, this.at(index), [expected], timeoutMs) as WaitResult;
  }

  notify(index: number, count: number): void {
    this.client.atomic(Op.NOTIFY, this.id, this.at(index), count === Infinity ? -1 : count);
  }

  claim(index: number, expected: number, replacement: number, pid: number, token: number): number {
    const at = this.at(index);
    const old = this.client.atomic(Op.CLAIM, this.id, at, expected, replacement, pid, token);
    if (old === expected) this.holder(at, pid, token);
    return old;
  }

  claimExchange(
    index: number,
    replacement: number,
    free: number,
    pid: number,
    token: number,
  ): number {
    const at = this.at(index);
    const old = this.client.atomic(Op.CLAIM_EXCHANGE, this.id, at, replacement, free, pid, token);
    if (old === free) this.holder(at, pid, token);
    return old;
  }

  claimOrWait(
    index: number,
    replacement: number,
    free: number,
    pid: number,
    token: number,
    timeoutMs: number,
  ): 'claimed' | WaitResult {
    const at = this.at(index);
    const args = [replacement, free, pid, token];
    const r = this.client.wait(Op.CLAIM_OR_WAIT, this.id, at, args, timeoutMs);
    if (r === 'claimed') this.holder(at, pid, token);
    return r;
  }

  unclaim(index: number, free: number, contended: number): boolean {
    const at = this.at(index);
    const released = this.client.atomic(Op.UNCLAIM, this.id, at, free, contended) === 1;
    if (released) this.holder(at, 0, 0);
    return released;
  }

  /** The holder's words the server just stored for this thread. */
  private holder(at: number, pid: number, token: number): void {
    this.client.remember(this.a, at + 4, pid);
    this.client.remember(this.a, at + 8, token);
  }
}

/** A DataView's accessors over remote memory: each read or write a request. */
export class RemoteView implements ByteView {
  private readonly scratch = new DataView(new ArrayBuffer(8));
  private readonly bytes = new Uint8Array(this.scratch.buffer);

  constructor(
    private readonly memory: RemoteMemory,
    private readonly base: number,
  ) {}

  private load(offset: number, size: number): DataView {
    this.bytes.set(this.memory.read(this.base + offset, size));
    return this.scratch;
  }

  private flush(offset: number, size: number): void {
    this.memory.write(this.base + offset, this.bytes.subarray(0, size));
  }

  getInt8(o: number): number {
    return this.load(o, 1).getInt8(0);
  }
  getUint8(o: number): number {
    return this.load(o, 1).getUint8(0);
  }
  getInt16(o: number, le?: boolean): number {
    return this.load(o, 2).getInt16(0, le);
  }
  getUint16(o: number, le?: boolean): number {
    return this.load(o, 2).getUint16(0, le);
  }
  getInt32(o: number, le?: boolean): number {
    return this.load(o, 4).getInt32(0, le);
  }
  getUint32(o: number, le?: boolean): number {
    return this.load(o, 4).getUint32(0, le);
  }
  getBigInt64(o: number, le?: boolean): bigint {
    return this.load(o, 8).getBigInt64(0, le);
  }
  getBigUint64(o: number, le?: boolean): bigint {
    return this.load(o, 8).getBigUint64(0, le);
  }
  getFloat32(o: number, le?: boolean): number {
    return this.load(o, 4).getFloat32(0, le);
  }
  getFloat64(o: number, le?: boolean): number {
    return this.load(o, 8).getFloat64(0, le);
  }
  setInt8(o: number, v: number): void {
    this.scratch.setInt8(0, v);
    this.flush(o, 1);
  }
  setUint8(o: number, v: number): void {
    this.scratch.setUint8(0, v);
    this.flush(o, 1);
  }
  setInt16(o: number, v: number, le?: boolean): void {
    this.scratch.setInt16(0, v, le);
    this.flush(o, 2);
  }
  setUint16(o: number, v: number, le?: boolean): void {
    this.scratch.setUint16(0, v, le);
    this.flush(o, 2);
  }
  setInt32(o: number, v: number, le?: boolean): void {
    this.scratch.setInt32(0, v, le);
    this.flush(o, 4);
  }
  setUint32(o: number, v: number, le?: boolean): void {
    this.scratch.setUint32(0, v, le);
    this.flush(o, 4);
  }
  setBigInt64(o: number, v: bigint, le?: boolean): void {
    this.scratch.setBigInt64(0, v, le);
    this.flush(o, 8);
  }
  setBigUint64(o: number, v: bigint, le?: boolean): void {
    this.scratch.setBigUint64(0, v, le);
    this.flush(o, 8);
  }
  setFloat32(o: number, v: number, le?: boolean): void {
    this.scratch.setFloat32(0, v, le);
    this.flush(o, 4);
  }
  setFloat64(o: number, v: number, le?: boolean): void {
    this.scratch.setFloat64(0, v, le);
    this.flush(o, 8);
  }
}
