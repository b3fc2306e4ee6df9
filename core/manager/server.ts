/**
 * The manager's server process: `node dist/core/manager/server.js`, forked by `Manager.start()`.
 * It listens on a Unix socket (or TCP), checks each client's authkey (`auth.ts`), then serves
 * calls on the shared objects (`objects.ts`), many in flight per connection, answering in
 * batches. It ends with its owner: on `stop`, when the IPC channel closes, or on SIGTERM (the
 * kernel's parent-death signal, through the addon), and removes its socket directory as it goes.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import { encodeThrown } from '../error-codec';
import { KeyError } from '../errors';
import { sharedMemoryAddon } from '../shared/native';
import { tracer } from '../trace/emitter';
import type { TypeCode } from '../shared/ctypes';
import { formatAddress, type FromServer, type ToServer } from './address';
import { acceptHandshake, keyBytes } from './auth';
import { FrameReader, FrameWriter, type Reply, type Request } from './frames';
import {
  ServerArray,
  ServerBarrier,
  ServerCondition,
  ServerDict,
  ServerEvent,
  ServerList,
  ServerLock,
  ServerNamespace,
  ServerQueue,
  ServerSemaphore,
  ServerValue,
  type Client,
  type ManagedObject,
  type ProxyKind,
} from './objects';

interface Entry {
  object: ManagedObject;
  refs: number;
  /** A Value's or Array's lock, a Barrier's parties: what a proxy needs besides the id. */
  extra: { lock?: number; parties?: number };
}

const objects = new Map<number, Entry>();
/** Objects published by name (`manager.publish`), each name holding a reference. */
const names = new Map<string, number>();
let nextObject = 1;
const clients = new Set<Connection>();
const ops: Record<string, number> = {};
let managerId = '';
let socketDir: string | undefined;
let server: Server | undefined;

function send(msg: FromServer): void {
  if (process.connected) process.send!(msg);
}

/** Creates an object, held once by `client`; returns its id (and its lock's, for Value/Array). */
function create(client: Connection, kind: ProxyKind, args: unknown[]): Record<string, number> {
  const add = (object: ManagedObject, extra: Entry['extra'] = {}): number => {
    const id = nextObject++;
    objects.set(id, { object, refs: 0, extra });
    client.hold(id);
    return id;
  };
  const lockArg = (): ServerLock => {
    const id = args[0] as number | undefined;
    if (id === undefined) return new ServerLock('RLock');
    const entry = objects.get(id);
    if (!(entry?.object instanceof ServerLock))
      throw new TypeError('a Condition takes a Lock or RLock of the same manager');
    return entry.object;
  };
  switch (kind) {
    case 'dict':
      return { id: add(new ServerDict(new Map(args[0] as Iterable<[unknown, unknown]>))) };
    case 'list':
      return { id: add(new ServerList([...((args[0] as Iterable<unknown>) ?? [])])) };
    case 'Namespace':
      return {
        id: add(
          new ServerNamespace(new Map(Object.entries((args[0] as Record<string, unknown>) ?? {}))),
        ),
      };
    case 'Lock':
    case 'RLock':
      return { id: add(new ServerLock(kind)) };
    case 'Semaphore':
    case 'BoundedSemaphore':
      return { id: add(new ServerSemaphore(kind, (args[0] as number | undefined) ?? 1)) };
    case 'Condition':
      return { id: add(new ServerCondition(lockArg())) };
    case 'Event':
      return { id: add(new ServerEvent()) };
    case 'Barrier':
      return {
        id: add(new ServerBarrier(args[0] as number, args[1] as number | undefined), {
          parties: args[0] as number,
        }),
      };
    case 'Queue':
      return { id: add(new ServerQueue((args[0] as number | undefined) ?? 0)) };
    case 'Value':
    case 'Array': {
      const object =
        kind === 'Value'
          ? new ServerValue(args[0] as TypeCode, args[1] as number)
          : new ServerArray(args[0] as TypeCode, args[1] as number);
      const lock = args[2] ? add(new ServerLock('RLock')) : undefined;
      return { id: add(object, lock === undefined ? {} : { lock }), ...(lock ? { lock } : {}) };
    }
    default:
      throw new TypeError(`a manager cannot make a '${String(kind)}'`);
  }
}

function publish(name: string, id: number): void {
  if (typeof name !== 'string' || name === '')
    throw new TypeError('a published name is a non-empty string');
  const entry = objects.get(id);
  if (!entry) throw new ReferenceError(`the manager has no object #${id}`);
  const refs = [id, ...(entry.extra.lock !== undefined ? [entry.extra.lock] : [])];
  for (const r of refs) objects.get(r)!.refs++;
  const previous = names.get(name);
  names.set(name, id);
  if (previous !== undefined) {
    const old = objects.get(previous);
    const oldRefs = [previous, ...(old?.extra.lock !== undefined ? [old.extra.lock] : [])];
    for (const r of oldRefs) {
      const e = objects.get(r);
      if (e && --e.refs <= 0) objects.delete(r);
    }
  }
}

class Connection implements Client {
  private static next = 1;
  readonly id = Connection.next++;
  closed = false;
  private readonly closers = new Set<() => void>();
  /** Object id → how many proxies in this client hold it. */
  private readonly held = new Map<number, number>();
  private readonly writer: FrameWriter<Reply>;

  constructor(private readonly socket: Socket) {
    this.writer = new FrameWriter<Reply>(socket, (reply, err) => {
      // A value stored by one client that cannot be sent back (it arrived, so this is rare).
      this.writer.send([reply[0], 0, encodeThrown(err)]);
    });
  }

  start(rest: Buffer): void {
    const reader = new FrameReader((messages) => {
      for (const m of messages) this.handle(m as Request);
    });
    const feed = (chunk: Buffer): void => {
      try {
        reader.push(chunk);
      } catch {
        this.socket.destroy();
      }
    };
    this.socket.on('data', feed);
    this.socket.on('close', () => this.close());
    clients.add(this);
    this.writer.send([0, 1, { pid: process.pid, manager: managerId }]);
    if (rest.length > 0) feed(rest);
  }

  onClose(fn: () => void): () => void {
    if (this.closed) {
      fn();
      return () => {};
    }
    this.closers.add(fn);
    return () => this.closers.delete(fn);
  }

  hold(id: number): void {
    const entry = objects.get(id);
    if (!entry) return;
    entry.refs++;
    this.held.set(id, (this.held.get(id) ?? 0) + 1);
  }

  drop(id: number): void {
    const n = this.held.get(id);
    if (!n) return;
    if (n === 1) this.held.delete(id);
    else this.held.set(id, n - 1);
    const entry = objects.get(id);
    if (entry && --entry.refs <= 0) objects.delete(id);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clients.delete(this);
    // Its waiters leave their queues, and the locks it holds pass to the next in line.
    for (const fn of [...this.closers]) fn();
    this.closers.clear();
    for (const [id, n] of this.held) {
      const entry = objects.get(id);
      if (entry && (entry.refs -= n) <= 0) objects.delete(id);
    }
    this.held.clear();
  }

  private reply(id: number, ok: boolean, value: unknown): void {
    if (id === 0 || this.closed) return;
    this.writer.send(
      !ok ? [id, 0, encodeThrown(value)] : value === undefined ? [id, 2] : [id, 1, value],
    );
  }

  private handle([id, target, method, args]: Request): void {
    let result: unknown;
    try {
      result = target === 0 ? this.manage(method, args) : this.invoke(target, method, args);
    } catch (err) {
      this.reply(id, false, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.reply(id, true, value),
        (err) => this.reply(id, false, err),
      );
    } else {
      this.reply(id, true, result);
    }
  }

  private manage(method: string, args: unknown[]): unknown {
    switch (method) {
      case 'create':
        return create(this, args[0] as ProxyKind, args.slice(1));
      case 'incref':
        for (const id of args as number[]) this.hold(id);
        return undefined;
      case 'decref':
        for (const id of args as number[]) this.drop(id);
        return undefined;
      case 'publish':
        return publish(args[0] as string, args[1] as number);
      case 'lookup':
        return this.lookup(args[0] as string);
      default:
        throw new TypeError(`the manager has no operation '${method}'`);
    }
  }

  private lookup(name: string): { kind: ProxyKind; id: number } & Entry['extra'] {
    const id = names.get(name);
    const entry = id === undefined ? undefined : objects.get(id);
    if (id === undefined || !entry) {
      throw new KeyError(
        `nothing is published as ${JSON.stringify(name)}; published: ${[...names.keys()].join(', ') || '(none)'}`,
        name,
      );
    }
    this.hold(id);
    if (entry.extra.lock !== undefined) this.hold(entry.extra.lock);
    return { kind: entry.object.kind, id, ...entry.extra };
  }

  private invoke(target: number, method: string, args: unknown[]): unknown {
    const entry = objects.get(target);
    if (!entry)
      throw new ReferenceError(
        `the manager has no object #${target}: it was released (no proxy held it any more)`,
      );
    const object = entry.object;
    ops[object.kind] = (ops[object.kind] ?? 0) + 1;
    const fn = Object.hasOwn(object.methods, method) ? object.methods[method] : undefined;
    if (!fn) {
      throw new TypeError(
        `a manager ${object.kind} has no method '${method}'; its methods: ${Object.keys(object.methods).join(', ')}`,
      );
    }
    return (fn as (client: Client, ...a: unknown[]) => unknown)(this, ...args);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---- Operation counts in the trace: running totals, at most one event per interval, when changed.

let lastOps = '';

function reportOps(): void {
  if (!tracer) return;
  const key = JSON.stringify([ops, clients.size, objects.size]);
  if (key === lastOps) return;
  lastOps = key;
  tracer.emit('manager.ops', {
    manager: managerId,
    ops: { ...ops },
    clients: clients.size,
    objects: objects.size,
  });
}

// ---- Lifetime

let ending = false;

function removeSocketDir(): void {
  if (socketDir) rmSync(socketDir, { recursive: true, force: true });
}

function shutdown(code = 0): void {
  if (ending) return;
  ending = true;
  reportOps();
  for (const c of clients) c.destroy();
  server?.close();
  removeSocketDir();
  tracer?.flushSync();
  process.exit(code);
}

/** Ends with the owner: its IPC channel closing, or the kernel's parent-death signal. */
function watchOwner(): void {
  process.on('disconnect', () => shutdown());
  process.on('SIGTERM', () => shutdown());
  // Ctrl-C in a terminal reaches the whole process group: the owner decides, as Python's does.
  process.on('SIGINT', () => {});
  const owner = process.ppid;
  const addon = sharedMemoryAddon(false);
  if (addon) {
    try {
      addon.setParentDeathSignal(constants.signals.SIGTERM);
    } catch {
      // the IPC channel's disconnect is enough: this process never blocks its event loop
    }
  }
  if (process.ppid !== owner) shutdown();
}

function listen(init: Extract<ToServer, { t: 'init' }>): void {
  managerId = init.manager;
  socketDir = init.dir;
  const key = keyBytes(init.authkey);
  server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    acceptHandshake(socket, key).then(
      (rest) => new Connection(socket).start(rest),
      () => {
        // A stranger or a wrong key: acceptHandshake has closed the socket; carry on serving.
      },
    );
  });
  server.on('error', (err: NodeJS.ErrnoException) => {
    send({ t: 'error', message: `${err.code ?? ''} ${err.message}`.trim() });
    shutdown(1);
  });
  server.listen(init.listen, () => {
    const bound = server!.address();
    const address =
      'path' in init.listen || typeof bound !== 'object' || bound === null
        ? formatAddress(init.listen)
        : formatAddress({ host: init.listen.host, port: bound.port });
    send({ t: 'listening', address });
  });
  if (tracer) {
    const ms = Number(process.env.POOLSCOPE_SAMPLE_MS) || 100;
    setInterval(reportOps, ms).unref();
  }
}

watchOwner();
process.on('message', (msg: ToServer) => {
  if (msg.t === 'init') listen(msg);
  else if (msg.t === 'stop') shutdown();
});
