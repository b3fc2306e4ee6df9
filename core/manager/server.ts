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
import { FrameReader, FrameWriter, jsonExact, type Reply, type Request } from './frames';
import {
  ASLEEP_IN_LOOP,
  ASLEEP_ON_BELL,
  createBell,
  createLane,
  LANE_ENABLED,
  POLLING,
  SERVER_SPIN_US,
  SERVER_WAIT_US,
  type Bell,
  type ServerLane,
} from './lane';
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
/** The bell of the shared-memory fast lanes (lane.ts), when clients get them: a Unix socket. */
let bell: Bell | undefined;

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
  /** Frames read from the socket so far (a lane call waits for those sent before it). */
  private framesRead = 0;
  lane: ServerLane | undefined;
  /** The lane segment's fd, until the client has opened it (or declined). */
  private laneFd: number | undefined;
  /** The call taken from the lane and not yet answered (0: none). */
  private laneCall = 0;

  constructor(private readonly socket: Socket) {
    this.writer = new FrameWriter<Reply>(socket, (reply, err) => {
      // A value stored by one client that cannot be sent back (it arrived, so this is rare).
      this.writer.send([reply[0], 0, encodeThrown(err)]);
    });
  }

  start(rest: Buffer): void {
    const reader = new FrameReader((messages) => {
      for (const m of messages) this.handle(m as Request);
      this.framesRead++;
      if (this.lane?.hasRequest()) pollLanes();
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
    const hello: Record<string, unknown> = { pid: process.pid, manager: managerId };
    const addon = bell ? sharedMemoryAddon(false) : undefined;
    if (addon) {
      try {
        const { fd, lane } = createLane(addon);
        this.laneFd = fd;
        this.lane = lane;
        hello.lane = { fd, bell: bell!.fd };
      } catch {
        // No memfd here: this client uses the socket alone.
      }
    }
    this.writer.send([0, 1, hello]);
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

  private laneOpened(opened: boolean): void {
    if (this.laneFd !== undefined) sharedMemoryAddon(false)?.closeFd(this.laneFd);
    this.laneFd = undefined;
    if (opened && this.lane) laneClients.add(this);
    else this.lane = undefined;
  }

  /** Takes and serves the lane's pending call, if it may; whether it did. */
  pollLane(): boolean {
    if (this.laneCall !== 0 || this.closed) return false;
    const text = this.lane!.take(this.framesRead);
    if (text === undefined) return false;
    let req: Request;
    try {
      req = JSON.parse(text) as Request;
      if (!Array.isArray(req) || typeof req[0] !== 'number' || req[0] <= 0) throw new Error();
    } catch {
      this.socket.destroy();
      return false;
    }
    this.laneCall = req[0];
    this.handle(req);
    return true;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clients.delete(this);
    laneClients.delete(this);
    this.laneOpened(false);
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
    const message: Reply = !ok
      ? [id, 0, encodeThrown(value)]
      : value === undefined
        ? [id, 2]
        : [id, 1, value];
    if (id === this.laneCall) {
      this.laneCall = 0;
      // In the slot if the client still spins on it and JSON carries it; else by the socket.
      if (this.lane!.reply(jsonExact(message) ? JSON.stringify(message) : undefined)) return;
    }
    this.writer.send(message);
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
      // A lane call that waits (a contended lock, an empty queue): its client stops waiting on
      // the lane, and the answer comes by the socket.
      if (id === this.laneCall) {
        this.laneCall = 0;
        this.lane!.reply(undefined);
      }
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
      case 'lane':
        // [opened]: the client's answer to the offer; []: a ring (a lane call while asleep).
        if (args.length > 0) this.laneOpened(args[0] === true);
        else if (this.lane) pollLanes();
        return undefined;
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

// ---- The fast lanes (lane.ts): polled for a while after each lane call, then asleep until rung.

const laneClients = new Set<Connection>();
let polling = false;

function laneRequest(): boolean {
  for (const c of laneClients) if (c.lane!.hasRequest()) return true;
  return false;
}

/** Starts polling the lanes, unless it is going on. */
function pollLanes(): void {
  if (polling || !bell) return;
  polling = true;
  bell.set(POLLING);
  spinLanes();
}

/**
 * Serves lane calls as they come: spins for SERVER_SPIN_US, then sleeps on the bell, for
 * SERVER_WAIT_US in all after the last call; after each call, one turn of the event loop
 * (replies that wait on promises, the sockets, the owner's messages).
 */
function spinLanes(): void {
  const b = bell!;
  const start = performance.now();
  const spinUntil = start + SERVER_SPIN_US / 1000;
  const until = start + SERVER_WAIT_US / 1000;
  let spins = 0;
  for (;;) {
    let took = false;
    for (const c of laneClients) if (c.pollLane()) took = true;
    if (took) return void setImmediate(spinLanes);
    if ((++spins & 63) !== 0) continue;
    const now = performance.now();
    if (now < spinUntil) continue;
    if (now >= until) break;
    const count = b.count();
    b.set(ASLEEP_ON_BELL);
    // A call put in a slot just before: its client saw us polling and did not ring.
    if (!laneRequest()) b.sleep(count, until - now);
    b.set(POLLING);
  }
  b.set(ASLEEP_IN_LOOP);
  // Likewise, a call put in a slot as we said we go back to the event loop.
  if (laneRequest()) {
    b.set(POLLING);
    return void setImmediate(spinLanes);
  }
  polling = false;
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
  const addon = LANE_ENABLED && 'path' in init.listen ? sharedMemoryAddon(false) : undefined;
  if (addon) {
    try {
      bell = createBell(addon);
    } catch {
      // No memfd: every client uses the socket alone.
    }
  }
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
