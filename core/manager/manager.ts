/**
 * `Manager`: Python's `multiprocessing.Manager()` for Node. `await Manager.start()` forks a
 * server process that holds shared objects (dict, list, Namespace, locks, Queue, Value, Array,
 * ...) and hands out proxies to them; `await Manager.connect(address, { authkey })` reaches a
 * running one from any process. See docs/manager.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveType, type ScalarType, type TypeCode } from '../shared/ctypes';
import { tracer } from '../trace/emitter';
import {
  formatAddress,
  parseAddress,
  type FromServer,
  type ManagerAddress,
  type ManagerTarget,
  type ToServer,
} from './address';
import { keyBytes, type AuthKey } from './auth';
import { ManagerConnection, type GoneInfo } from './connection';
import type { ProxyKind } from './objects';
import {
  makeProxy,
  type AnyProxy,
  type ArrayProxy,
  type BarrierProxy,
  type BoundedSemaphoreProxy,
  type ConditionProxy,
  type DictProxy,
  type EventProxy,
  type ListProxy,
  type LockProxy,
  type NamespaceProxy,
  type QueueProxy,
  type RLockProxy,
  type SemaphoreProxy,
  type ValueProxy,
} from './proxies';
import { checkTimeout } from '../timeouts';

export interface ManagerOptions {
  /**
   * Where to listen: a Unix socket path, `'tcp:host:port'` or `{ host, port }` (port 0: any free
   * port; read the one chosen from `manager.address`). Default: a socket in a private temporary
   * directory (mode 0700), removed when the manager ends.
   */
  address?: ManagerAddress;
  /** The key clients must prove they know. Default: 32 random bytes (`manager.authkey`). */
  authkey?: AuthKey;
  /** The server process's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Node flags for the server process (default: none). */
  execArgv?: string[];
  /** How long to wait for the server to listen, in ms (default 10,000). */
  startTimeoutMs?: number;
}

export interface ConnectOptions {
  /** The manager's authkey: required. */
  authkey: AuthKey;
}

/** A number type for a manager Value or Array: a type code or a ctypes scalar (`c_int`). */
export type ManagedType = TypeCode | ScalarType;

/** The compiled server entry, next to this file after the build. */
export const SERVER_ENTRY = resolve(__dirname, 'server.js');
const STOP_KILL_MS = 5000;
/** How long a broken connection waits for the server's exit status, to say how it ended. */
const EXPLAIN_WAIT_MS = 1000;

let nextManager = 1;

/** The process that started a manager: it owns the server process and its socket directory. */
class Owner {
  stopping = false;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;
  address = '';

  constructor(
    readonly id: string,
    readonly child: ChildProcess,
    readonly dir: string | undefined,
    /** A socket path the user chose: removed if the server could not remove it itself. */
    readonly userSocket: string | undefined,
  ) {
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        owners.delete(this);
        this.cleanUp();
        if (this.address) this.traceStopped();
        resolveExit();
      });
    });
    owners.add(this);
  }

  cleanUp(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    if (this.userSocket) {
      try {
        if (lstatSync(this.userSocket).isSocket()) unlinkSync(this.userSocket);
      } catch {
        // already gone
      }
    }
  }

  traceStopped(): void {
    const exit = this.exit;
    const signal = exit?.signal ?? null;
    tracer?.emit('manager.stopped', {
      manager: this.id,
      address: this.address,
      reason: this.stopping || !exit ? 'stopped' : signal ? 'killed' : 'exited',
      exitCode: signal ? -(constants.signals[signal] ?? 0) : (exit?.code ?? null),
      signal,
    });
  }

  /** How the server ended, once it has (the connection may break a moment before). */
  async explain(): Promise<GoneInfo | undefined> {
    let timer: NodeJS.Timeout | undefined;
    this.child.ref();
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, EXPLAIN_WAIT_MS)))]);
    clearTimeout(timer);
    this.child.unref();
    const exit = this.exit;
    if (this.stopping)
      return { reason: 'stopped', how: 'was stopped (manager.stop())', exitCode: 0, signal: null };
    if (!exit) return undefined;
    if (exit.signal) {
      return {
        reason: 'killed',
        how: `was killed by ${exit.signal}`,
        exitCode: -(constants.signals[exit.signal] ?? 0),
        signal: exit.signal,
      };
    }
    return {
      reason: 'exited',
      how: `exited with code ${exit.code}`,
      exitCode: exit.code,
      signal: null,
    };
  }
}

const owners = new Set<Owner>();
let exitHookInstalled = false;

/** A program that ends without stopping its managers stops them (and tells the trace). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const owner of owners) {
      owner.stopping = true;
      owner.child.kill('SIGTERM');
      owner.cleanUp();
      owner.traceStopped();
    }
    tracer?.flushSync();
  });
}

function waitForListening(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolveAddress, reject) => {
    const timer = setTimeout(
      () => done(new Error(`the server did not listen within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (msg: FromServer): void => {
      if (msg.t === 'listening') done(undefined, msg.address);
      else done(new Error(msg.message));
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`the server process ended at once (${signal ?? `exit code ${code}`})`));
    const onError = (err: Error): void => done(err);
    function done(err: Error | undefined, address?: string): void {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) reject(err);
      else resolveAddress(address!);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', onError);
  });
}

function typeCode(type: ManagedType, what: string): TypeCode {
  const resolved = resolveType(type);
  if (resolved.kind !== 'scalar')
    throw new TypeError(
      `a manager ${what} holds numbers of one type code ('i', 'd', ...); for structured data use manager.dict() or manager.Namespace()`,
    );
  return resolved.code;
}

export class Manager {
  /** `unix:/path/to/socket` or `tcp:host:port`: what `Manager.connect` takes. */
  readonly address: string;
  /** @internal */
  readonly connection: ManagerConnection;
  private readonly owner: Owner | undefined;

  private constructor(connection: ManagerConnection, owner: Owner | undefined) {
    this.connection = connection;
    this.address = connection.address;
    this.owner = owner;
  }

  /** Starts a manager server process and connects to it. */
  static async start(options: ManagerOptions = {}): Promise<Manager> {
    const key = options.authkey === undefined ? randomBytes(32) : keyBytes(options.authkey);
    if (key.length === 0) throw new TypeError('a manager authkey must not be empty');
    checkTimeout(options.startTimeoutMs, 'Manager.start()', 'startTimeoutMs');
    let dir: string | undefined;
    let listen: ManagerTarget;
    if (options.address === undefined) {
      dir = mkdtempSync(join(tmpdir(), 'poolscope-manager-'));
      listen = { path: join(dir, 'manager.sock') };
    } else {
      listen = parseAddress(options.address);
    }
    const child = fork(SERVER_ENTRY, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: options.env ?? process.env,
      execArgv: options.execArgv ?? [],
    });
    const id = `${process.pid}:${nextManager++}`;
    const owner = new Owner(id, child, dir, 'path' in listen && !dir ? listen.path : undefined);
    installExitHook();
    let address: string;
    try {
      child.send({ t: 'init', listen, dir, authkey: key, manager: id } satisfies ToServer);
      address = await waitForListening(child, options.startTimeoutMs ?? 10_000);
    } catch (err) {
      child.kill('SIGKILL');
      await owner.exited;
      throw new Error(
        `the manager could not start on ${formatAddress(listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    owner.address = address;
    const connection = new ManagerConnection(
      parseAddress(address),
      address,
      key,
      () => owner.explain(),
      true,
    );
    try {
      await connection.ready;
    } catch (err) {
      child.kill('SIGKILL');
      await owner.exited;
      throw err;
    }
    tracer?.emit('manager.started', { manager: id, address, serverPid: child.pid! });
    // An idle manager never keeps the program alive: pending calls hold it open instead.
    child.unref();
    child.channel?.unref();
    return new Manager(connection, owner);
  }

  /**
   * Connects to a running manager (`address` as `manager.address` gives it). Rejects with
   * `AuthenticationError` for a wrong key or when no manager answers there, and with
   * `ManagerGoneError` when nothing listens.
   */
  static async connect(address: ManagerAddress, options: ConnectOptions): Promise<Manager> {
    if (!options || options.authkey === undefined)
      throw new TypeError('Manager.connect(address, { authkey }): the authkey is required');
    const target = parseAddress(address);
    const connection = new ManagerConnection(
      target,
      formatAddress(target),
      keyBytes(options.authkey),
      undefined,
      true,
    );
    await connection.ready;
    return new Manager(connection, undefined);
  }

  /** The key clients must present (give it to `Manager.connect` elsewhere). */
  get authkey(): Buffer {
    return this.connection.key;
  }

  /** The server process's pid. */
  get pid(): number | undefined {
    return this.owner?.child.pid ?? this.connection.serverPid;
  }

  private async make<P>(kind: ProxyKind, args: unknown[], parties?: number): Promise<P> {
    const made = (await this.connection.call(
      0,
      'create',
      [kind, ...args],
      `manager.${kind}()`,
    )) as { id: number; lock?: number };
    return makeProxy(this.connection, kind, made.id, false, { lock: made.lock, parties }) as P;
  }

  /**
   * Makes `proxy`'s object findable by `name` from any client (`lookup`); the name keeps the
   * object alive until the manager stops or the name is given to another object.
   */
  async publish(name: string, proxy: AnyProxy): Promise<void> {
    if (proxy.connection.address !== this.address)
      throw new TypeError('publish() takes a proxy of this manager');
    await this.connection.call(0, 'publish', [name, proxy.id], 'manager.publish()');
  }

  /** A proxy for the object published as `name`; `KeyError` when nothing is. */
  async lookup<P extends AnyProxy = AnyProxy>(name: string): Promise<P> {
    const found = (await this.connection.call(0, 'lookup', [name], 'manager.lookup()')) as {
      kind: ProxyKind;
      id: number;
      lock?: number;
      parties?: number;
    };
    return makeProxy(this.connection, found.kind, found.id, false, found) as P;
  }

  /** A `Map` in the manager (Python's `manager.dict()`). */
  async dict<K = unknown, V = unknown>(
    init?: Map<K, V> | Iterable<[K, V]> | Record<string, V>,
  ): Promise<DictProxy<K, V>> {
    const entries =
      init === undefined
        ? []
        : Symbol.iterator in init
          ? [...(init as Iterable<[K, V]>)]
          : Object.entries(init);
    return this.make('dict', [entries]);
  }

  /** An array in the manager (Python's `manager.list()`). */
  async list<T = unknown>(init?: Iterable<T>): Promise<ListProxy<T>> {
    return this.make('list', [init === undefined ? [] : [...init]]);
  }

  async Namespace(init?: Record<string, unknown>): Promise<NamespaceProxy> {
    return this.make('Namespace', [init ?? {}]);
  }

  async Lock(): Promise<LockProxy> {
    return this.make('Lock', []);
  }

  async RLock(): Promise<RLockProxy> {
    return this.make('RLock', []);
  }

  async Semaphore(value = 1): Promise<SemaphoreProxy> {
    return this.make('Semaphore', [value]);
  }

  async BoundedSemaphore(value = 1): Promise<BoundedSemaphoreProxy> {
    return this.make('BoundedSemaphore', [value]);
  }

  /** A Condition over `lock` (a Lock or RLock of this manager), or over a new RLock. */
  async Condition(lock?: LockProxy | RLockProxy): Promise<ConditionProxy> {
    if (lock !== undefined && lock.connection.address !== this.address)
      throw new TypeError('a Condition takes a Lock or RLock of the same manager');
    return this.make('Condition', lock === undefined ? [] : [lock.id]);
  }

  async Event(): Promise<EventProxy> {
    return this.make('Event', []);
  }

  /** A Barrier for `parties` calls of `wait`; `timeoutMs`: the default timeout of each wait. */
  async Barrier(parties: number, options: { timeoutMs?: number } = {}): Promise<BarrierProxy> {
    return this.make('Barrier', [parties, options.timeoutMs], parties);
  }

  /** A FIFO queue; `maxsize` 0 (default) is unbounded. */
  async Queue<T = unknown>(maxsize = 0): Promise<QueueProxy<T>> {
    return this.make('Queue', [maxsize]);
  }

  /** A typed number with its own RLock (`getLock()`), unless `lock: false`. */
  async Value<T extends number | bigint = number>(
    type: ManagedType,
    initial?: NoInfer<T> | string,
    options: { lock?: boolean } = {},
  ): Promise<ValueProxy<T>> {
    return this.make('Value', [typeCode(type, 'Value'), initial, options.lock ?? true]);
  }

  /** A fixed-length typed array, from a size or initial items, with its own RLock by default. */
  async Array<T extends number | bigint = number>(
    type: ManagedType,
    sizeOrInitial: number | Iterable<NoInfer<T>> | string,
    options: { lock?: boolean } = {},
  ): Promise<ArrayProxy<T>> {
    const init =
      typeof sizeOrInitial === 'number' || typeof sizeOrInitial === 'string'
        ? sizeOrInitial
        : [...sizeOrInitial];
    return this.make('Array', [typeCode(type, 'Array'), init, options.lock ?? true]);
  }

  /**
   * Stops the server (the process that started it), after which every proxy call fails with
   * `ManagerGoneError`; resolves once the server has exited and its socket is removed. In a
   * process that only connected, closes the connection (as `close()`).
   */
  async stop(): Promise<void> {
    const owner = this.owner;
    if (!owner) return this.close();
    if (!owner.exit) owner.stopping = true;
    this.connection.close({
      reason: 'stopped',
      how: 'was stopped (manager.stop())',
      exitCode: 0,
      signal: null,
    });
    if (owner.exit) return;
    owner.child.ref();
    try {
      owner.child.send({ t: 'stop' } satisfies ToServer);
    } catch {
      owner.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => owner.child.kill('SIGKILL'), STOP_KILL_MS);
    await owner.exited;
    clearTimeout(timer);
  }

  /** Closes this process's connection; the server goes on for other clients. */
  async close(): Promise<void> {
    this.connection.close({
      reason: 'closed',
      how: 'was disconnected by this client (manager.close())',
      exitCode: null,
      signal: null,
    });
  }

  /** `await using m = await Manager.start()`: stops (or, for a client, closes) at scope end. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
