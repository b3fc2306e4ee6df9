/**
 * A thread's helper for the fallback: the socket I/O of its requests to one server (client.ts),
 * done in this worker thread's event loop while the requesting thread blocks in `Atomics.wait`
 * on their mailbox (protocol.ts). A dumb pipe: frames go out and come back as they are.
 *
 * If the connection cannot be made or breaks, the mailbox says GONE, with the reason, for good.
 */
import { connect, type Socket } from 'node:net';
import { workerData } from 'node:worker_threads';
import {
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
  TOKEN_BYTES,
  type HelperData,
} from './protocol';

const { address, token, ownerPid, mailbox } = workerData as HelperData;
const words = new Int32Array(mailbox, 0, 2);
const data = new Uint8Array(mailbox, MAILBOX_DATA, MAILBOX_BYTES);
/** How long to keep trying to reach a server that is still starting. */
const CONNECT_MS = 5_000;

let socket: Socket | undefined;
let over = false;

function ownerAlive(): boolean {
  try {
    process.kill(ownerPid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Says why, wakes the requesting thread, and ends this thread. */
function gone(reason: string): void {
  if (over) return;
  over = true;
  const text = Buffer.from(reason).subarray(0, MAILBOX_BYTES);
  data.set(text);
  Atomics.store(words, MAILBOX_LENGTH, text.length);
  Atomics.store(words, MAILBOX_STATE, GONE);
  Atomics.notify(words, MAILBOX_STATE);
  socket?.destroy();
  process.exit(0);
}

process.on('uncaughtException', (err) => gone(`its helper thread failed: ${err.message}`));

/** Hands a reply frame to the requesting thread. */
function deliver(frame: Buffer): void {
  if (frame.length > MAILBOX_BYTES) {
    gone(`a reply of ${frame.length} bytes does not fit the mailbox`);
    return;
  }
  data.set(frame);
  Atomics.store(words, MAILBOX_STATE, REPLY);
  Atomics.notify(words, MAILBOX_STATE);
}

/** Waits (in the event loop) for the next request, and sends it. */
function watch(): void {
  const state = Atomics.load(words, MAILBOX_STATE);
  if (state === REQUEST) {
    const length = new DataView(mailbox, MAILBOX_DATA, 4).getUint32(0, true);
    socket!.write(Buffer.from(data.subarray(0, 4 + length)));
    return;
  }
  const result = Atomics.waitAsync(words, MAILBOX_STATE, state);
  if (result.async) void result.value.then(watch);
  else watch();
}

function start(deadline: number): void {
  const s = connect(address);
  let buffered: Buffer = Buffer.alloc(0);
  let greeted = false;
  s.once('connect', () => {
    socket = s;
    const hello = Buffer.alloc(4 + OP_HEAD + TOKEN_BYTES);
    hello.writeUInt32LE(OP_HEAD + TOKEN_BYTES, 0);
    hello[4] = Op.HELLO;
    Buffer.from(token, 'hex').copy(hello, 4 + OP_HEAD);
    s.write(hello);
  });
  s.on('data', (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= 4) {
      const length = buffered.readUInt32LE(0);
      if (buffered.length < 4 + length) return;
      const frame = buffered.subarray(0, 4 + length);
      buffered = buffered.subarray(4 + length);
      if (!greeted) {
        greeted = true;
        Atomics.store(words, MAILBOX_STATE, IDLE);
        Atomics.notify(words, MAILBOX_STATE);
      } else {
        deliver(frame);
      }
      watch();
    }
  });
  s.on('error', (err: NodeJS.ErrnoException) => {
    if (socket) return; // 'close' follows
    // The server thread may still be starting: try again for a while, if its process lives.
    if ((err.code === 'ECONNREFUSED' || err.code === 'ENOENT') && Date.now() < deadline) {
      if (ownerAlive()) {
        setTimeout(() => start(deadline), 20);
        return;
      }
      gone(`process ${ownerPid}, which shares it, has exited`);
      return;
    }
    gone(`it cannot be reached (${err.message})`);
  });
  s.on('close', () => {
    // (A process that just died may still answer as alive until it is reaped.)
    if (socket) gone(`process ${ownerPid}, which shares it, has exited or stopped serving it`);
  });
}

start(Date.now() + CONNECT_MS);
