/**
 * The fallback's server: a worker thread of the process that holds shared memory as
 * SharedArrayBuffers, serving it to worker processes over a local socket (protocol.ts). It shares
 * the buffers with its owner, so its Atomics are atomic with respect to the owner's threads,
 * which go on using the memory directly; a request that sleeps (a lock's wait) is an
 * `Atomics.waitAsync`, woken by the same notify as the owner's blocking waiters, and never holds
 * up other clients.
 *
 * A buffer stays here while its owner holds it (it sends `drop` when the buffer is collected)
 * or a connection has it attached; the server says `idle` when it has none left, and its owner
 * ends it (owner.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import {
  ARG_BYTES,
  CLAIMED,
  MAILBOX_BYTES,
  OP_HEAD,
  Op,
  Status,
  TOKEN_BYTES,
  WAIT_NOT_EQUAL,
  WAIT_OK,
  WAIT_TIMED_OUT,
  type FromServer,
  type ServerData,
  type ToServer,
} from './protocol';

const { address, token } = workerData as ServerData;
const tokenBytes = Buffer.from(token, 'hex');
const port = parentPort!;

interface Served {
  words: Int32Array;
  bytes: Uint8Array;
  /** The owner still holds the buffer. */
  owned: boolean;
  /** Connections that have it attached. */
  attached: number;
}

const memories = new Map<number, Served>();
/** The highest id the owner has added: a higher one asked for has not arrived yet. */
let newest = 0;
/** ATTACHes of ids still on their way from the owner. */
const arriving = new Map<number, (() => void)[]>();
/** How long an ATTACH waits for its id to arrive from the owner. */
const ARRIVAL_MS = 10_000;

function tell(msg: FromServer): void {
  port.postMessage(msg);
}

function forget(id: number, held: Served): void {
  if (held.owned || held.attached > 0) return;
  memories.delete(id);
  if (memories.size === 0) tell({ t: 'idle', newest });
}

port.on('message', (msg: ToServer) => {
  if (msg.t === 'add') {
    memories.set(msg.id, {
      words: new Int32Array(msg.buffer, 0, msg.buffer.byteLength >> 2),
      bytes: new Uint8Array(msg.buffer),
      owned: true,
      attached: 0,
    });
    newest = Math.max(newest, msg.id);
    for (const go of arriving.get(msg.id) ?? []) go();
    arriving.delete(msg.id);
  } else {
    const held = memories.get(msg.id);
    if (held) {
      held.owned = false;
      forget(msg.id, held);
    }
  }
});

class RequestError extends Error {}

function reply(status: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out.writeUInt32LE(1 + payload.length, 0);
  out[4] = status;
  out.set(payload, 5);
  return out;
}

function value(v: number): Buffer {
  const out = Buffer.allocUnsafe(9);
  out.writeUInt32LE(5, 0);
  out[4] = Status.VALUE;
  out.writeInt32LE(v | 0, 5);
  return out;
}

function failure(message: string): Buffer {
  return reply(Status.ERROR, Buffer.from(message));
}

/** One client connection: its frames, its attached memories. */
class Connection {
  private greeted = false;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly attached = new Set<number>();
  private closed = false;

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.close());
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUInt32LE(0);
      // No client sends more than its mailbox holds: this is not one.
      if (length > MAILBOX_BYTES) {
        this.socket.destroy();
        return;
      }
      if (this.buffered.length < 4 + length) return;
      const frame = this.buffered.subarray(4, 4 + length);
      this.buffered = this.buffered.subarray(4 + length);
      try {
        this.run(frame);
      } catch (err) {
        // A request that cannot be served is answered; a frame that breaks the protocol (or a
        // stranger without the token) ends the connection.
        if (!(err instanceof RequestError)) {
          this.socket.destroy();
          return;
        }
        this.send(failure(err.message));
      }
    }
  }

  private send(out: Buffer): void {
    if (!this.closed) this.socket.write(out);
  }

  private served(id: number): Served {
    const held = this.attached.has(id) ? memories.get(id) : undefined;
    if (!held) throw new RequestError(`shared memory ${id} is not attached`);
    return held;
  }

  /**
   * Runs a frame's ops in order; the last one's outcome is the reply (WAIT and ATTACH, which come
   * last, reply by themselves when they are done).
   */
  private run(frame: Buffer): void {
    let at = 0;
    while (at < frame.length) {
      if (frame.length - at < OP_HEAD) throw new Error('truncated op');
      const op = frame[at]! as Op;
      const id = frame.readUInt32LE(at + 1);
      const offset = frame.readUInt32LE(at + 5);
      at += OP_HEAD;
      const args =
        op === Op.WRITE && frame.length - at >= 4 ? 4 + frame.readUInt32LE(at) : ARG_BYTES[op];
      if (args === undefined || frame.length - at < args) throw new Error(`bad op ${op}`);
      if (!this.greeted && op !== Op.HELLO) throw new Error('no hello');
      const last = at + args === frame.length;
      const out = this.op(op, id, offset, frame, at, last);
      at += args;
      if (last && out) this.send(out);
    }
  }

  private op(
    op: Op,
    id: number,
    offset: number,
    frame: Buffer,
    at: number,
    last: boolean,
  ): Buffer | undefined {
    switch (op) {
      case Op.HELLO: {
        const given = frame.subarray(at, at + TOKEN_BYTES);
        if (given.length !== tokenBytes.length || !timingSafeEqual(given, tokenBytes))
          throw new Error('wrong token');
        this.greeted = true;
        return value(0);
      }
      case Op.NOP:
        return value(0);
      case Op.ATTACH:
        if (!last) throw new Error('ATTACH must come last');
        this.attach(id);
        return undefined;
      case Op.DETACH: {
        if (this.attached.delete(id)) {
          const held = memories.get(id);
          if (held) {
            held.attached--;
            forget(id, held);
          }
        }
        return undefined;
      }
      case Op.READ: {
        const length = frame.readUInt32LE(at);
        const held = this.served(id);
        if (offset + length > held.bytes.length) throw new RequestError('read out of range');
        return reply(Status.BYTES, held.bytes.subarray(offset, offset + length));
      }
      case Op.WRITE: {
        const length = frame.readUInt32LE(at);
        const held = this.served(id);
        if (offset + length > held.bytes.length) throw new RequestError('write out of range');
        held.bytes.set(frame.subarray(at + 4, at + 4 + length), offset);
        return value(0);
      }
      default:
        return this.wordOp(op, this.served(id), offset, frame, at, last);
    }
  }

  private wordOp(
    op: Op,
    held: Served,
    offset: number,
    frame: Buffer,
    at: number,
    last: boolean,
  ): Buffer | undefined {
    const w = held.words;
    const span =
      op === Op.CLAIM || op === Op.CLAIM_EXCHANGE || op === Op.UNCLAIM || op === Op.CLAIM_OR_WAIT
        ? 3
        : 1;
    const i = offset >> 2;
    if (offset % 4 !== 0 || i + span > w.length)
      throw new RequestError(`word offset ${offset} out of range`);
    const a = (n: number): number => frame.readInt32LE(at + 4 * n);
    switch (op) {
      case Op.LOAD:
        return value(Atomics.load(w, i));
      case Op.STORE:
        Atomics.store(w, i, a(0));
        return value(0);
      case Op.ADD:
        return value(Atomics.add(w, i, a(0)));
      case Op.EXCHANGE:
        return value(Atomics.exchange(w, i, a(0)));
      case Op.COMPARE_EXCHANGE:
        return value(Atomics.compareExchange(w, i, a(0), a(1)));
      case Op.GET:
        return value(w[i]!);
      case Op.SET:
        w[i] = a(0);
        return undefined;
      case Op.CLAIM: {
        const old = Atomics.compareExchange(w, i, a(0), a(1));
        if (old === a(0)) {
          w[i + 1] = a(2);
          w[i + 2] = a(3);
        }
        return value(old);
      }
      case Op.CLAIM_EXCHANGE: {
        const old = Atomics.exchange(w, i, a(0));
        if (old === a(1)) {
          w[i + 1] = a(2);
          w[i + 2] = a(3);
        }
        return value(old);
      }
      case Op.CLAIM_OR_WAIT: {
        if (!last) throw new Error('CLAIM_OR_WAIT must come last');
        const [replacement, free, pid, token] = [a(0), a(1), a(2), a(3)];
        const claim = (): boolean => {
          if (Atomics.exchange(w, i, replacement) !== free) return false;
          w[i + 1] = pid;
          w[i + 2] = token;
          return true;
        };
        if (claim()) return value(CLAIMED);
        const timeoutMs = frame.readDoubleLE(at + 16);
        if (timeoutMs <= 0) return value(WAIT_TIMED_OUT);
        // Taken here as soon as woken: the client is a round trip away, and would find it taken
        // again by a holder that runs on.
        this.wait(w, i, replacement, timeoutMs, claim);
        return undefined;
      }
      case Op.UNCLAIM: {
        if (w[i] === a(0)) return value(0);
        w[i + 1] = 0;
        w[i + 2] = 0;
        if (Atomics.exchange(w, i, a(0)) === a(1)) Atomics.notify(w, i, 1);
        return value(1);
      }
      case Op.NOTIFY: {
        const count = a(0);
        return value(Atomics.notify(w, i, count < 0 ? Infinity : count));
      }
      case Op.WAIT:
        if (!last) throw new Error('WAIT must come last');
        this.wait(w, i, a(0), frame.readDoubleLE(at + 4));
        return undefined;
      default:
        throw new Error(`bad op ${String(op)}`);
    }
  }

  /**
   * Sleeps in this thread's event loop, not in the thread: other clients go on being served.
   * Then `then` (CLAIM_OR_WAIT's second try), unless the client is gone.
   */
  private wait(
    w: Int32Array,
    i: number,
    expected: number,
    timeoutMs: number,
    then?: () => boolean,
  ): void {
    const answer = (outcome: 'ok' | 'not-equal' | 'timed-out'): void => {
      if (this.closed) {
        // A client that died asleep may have taken a wake-up meant for a live one: pass it on
        // (a spurious wake-up is harmless, every waiter looks again).
        if (outcome === 'ok') Atomics.notify(w, i, 1);
        return;
      }
      if (then?.()) this.send(value(CLAIMED));
      else
        this.send(
          value(
            outcome === 'ok' ? WAIT_OK : outcome === 'not-equal' ? WAIT_NOT_EQUAL : WAIT_TIMED_OUT,
          ),
        );
    };
    const result = Atomics.waitAsync(w, i, expected, timeoutMs);
    if (result.async) void result.value.then(answer);
    else answer(result.value);
  }

  private attach(id: number): void {
    const done = (): void => {
      if (this.closed) return;
      const held = memories.get(id);
      if (!held) {
        this.send(
          failure(`shared memory ${id} is no longer served: the process that shares it let it go`),
        );
        return;
      }
      if (!this.attached.has(id)) {
        this.attached.add(id);
        held.attached++;
      }
      this.send(value(held.bytes.length));
    };
    if (id <= newest) {
      done();
      return;
    }
    // The task that carries this id was sent before the owner's `add` reached this thread.
    const list = arriving.get(id) ?? [];
    const arrived = (): void => {
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(() => {
      list.splice(list.indexOf(arrived), 1);
      done();
    }, ARRIVAL_MS);
    list.push(arrived);
    arriving.set(id, list);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of this.attached) {
      const held = memories.get(id);
      if (held) {
        held.attached--;
        forget(id, held);
      }
    }
    this.attached.clear();
  }
}

const server = createServer((socket) => new Connection(socket));
server.on('error', (err) => tell({ t: 'error', message: err.message }));
server.listen(address);
