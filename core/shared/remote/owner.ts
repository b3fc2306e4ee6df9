/**
 * The owner's side of the fallback: a SharedArrayBuffer handed to a worker process is served to
 * it by a server thread of this thread's (server.ts), started on first use. Each buffer is added
 * once, and dropped when this thread lets it go (the server keeps it while a connection has it
 * attached). The server never keeps the program alive, and ends when it serves nothing.
 *
 * It listens on a Linux abstract socket: a name, not a file, so nothing is left behind even when
 * this process is killed; the random token in every descriptor keeps strangers out (an abstract
 * socket has no file permissions). Elsewhere (or with POOLSCOPE_SHARED_SOCKET=file), a socket in a
 * fresh private directory (mode 0700) under the temp dir, removed when the server ends or the
 * process exits.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId, Worker } from 'node:worker_threads';
import type { RemoteRef } from './client';
import type { FromServer, ServerData, ToServer } from './protocol';

/** dist/core/shared/remote/server.js */
const SERVER = join(__dirname, 'server.js');

interface Running {
  readonly worker: Worker;
  readonly address: string;
  readonly token: string;
  /** The private directory of a socket file, if it is one. */
  readonly dir: string | undefined;
  /** Buffers given to this server, with their ids. */
  readonly ids: WeakMap<SharedArrayBuffer, number>;
  /** The last id given. */
  newest: number;
  readonly cleanup: () => void;
}

let running: Running | undefined;
/** Ids are unique per thread, across its servers: a client's cache keys on address and id. */
let nextId = 0;

const dropWhenCollected = new FinalizationRegistry<{ server: Running; id: number }>(
  ({ server, id }) => {
    if (server === running) server.worker.postMessage({ t: 'drop', id } satisfies ToServer);
  },
);

function listenAddress(): { address: string; dir: string | undefined } {
  const name = `poolscope-shm-${process.pid}-${threadId}-${randomBytes(6).toString('hex')}`;
  if (process.platform === 'linux' && process.env.POOLSCOPE_SHARED_SOCKET !== 'file')
    return { address: `\0${name}`, dir: undefined };
  if (process.platform === 'win32') return { address: `\\\\?\\pipe\\${name}`, dir: undefined };
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-'));
  return { address: join(dir, 'shm.sock'), dir };
}

function start(): Running {
  const { address, dir } = listenAddress();
  const token = randomBytes(32).toString('hex');
  const workerData: ServerData = { address, token };
  const worker = new Worker(SERVER, { workerData, execArgv: [] });
  const cleanup = (): void => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  const server: Running = {
    worker,
    address,
    token,
    dir,
    ids: new WeakMap(),
    newest: 0,
    cleanup,
  };
  worker.on('message', (msg: FromServer) => {
    // Nothing served, and no buffer on its way to it: end it (the next export starts another).
    if (msg.t === 'idle' && msg.newest === server.newest) stop(server);
    else if (msg.t === 'error')
      process.stderr.write(`poolscope: the shared-memory server failed: ${msg.message}\n`);
  });
  worker.on('error', (err) => {
    process.stderr.write(`poolscope: the shared-memory server failed: ${err.message}\n`);
    stop(server);
  });
  worker.on('exit', () => stop(server));
  // Serving memory never keeps the program alive: when the program ends, so does the server.
  // (After the listeners: adding a 'message' listener refs the worker's port again.)
  worker.unref();
  return server;
}

function stop(server: Running): void {
  if (running === server) running = undefined;
  void server.worker.terminate();
  server.cleanup();
  process.off('exit', server.cleanup);
}

/** How a worker process reaches `buffer`: through this thread's server. */
export function exportMemory(buffer: SharedArrayBuffer): RemoteRef {
  const server = (running ??= start());
  let id = server.ids.get(buffer);
  if (id === undefined) {
    id = ++nextId;
    server.ids.set(buffer, id);
    server.newest = id;
    server.worker.postMessage({ t: 'add', id, buffer } satisfies ToServer);
    dropWhenCollected.register(buffer, { server, id });
  }
  return {
    address: server.address,
    token: server.token,
    pid: process.pid,
    id,
    size: buffer.byteLength,
  };
}

/** @internal For tests: where this thread's server listens, if one runs. */
export function serverAddress(): string | undefined {
  return running?.address;
}
