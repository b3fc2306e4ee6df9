/**
 * A client's connection to a manager: calls leave as soon as they are made (gathered into one
 * write per tick), replies are matched by call id, so any number of calls can be in flight.
 * When the manager goes away, every pending call and every later one fails with
 * `ManagerGoneError`, saying where the manager was and, where this process can tell, how it ended.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { serialize } from 'node:v8';
import { decodeThrown, unsendableReason, type ThrownRecord } from '../error-codec';
import {
  AuthenticationError,
  ManagerGoneError,
  SerializationError,
  type ManagerGoneReason,
} from '../errors';
import type { ManagerTarget } from './address';
import { offerHandshake } from './auth';
import { FrameReader, FrameWriter, jsonExact, type Reply, type Request } from './frames';
import { CLIENT_SPIN_US, CLIENT_WAIT_US, LANE_ENABLED, openLane, type ClientLane } from './lane';
import { sharedMemoryAddon } from '../shared/native';

interface Call {
  resolve(value: unknown): void;
  reject(err: Error): void;
  what: string;
}

/** The server's first message on a connection. */
interface Hello {
  pid: number;
  manager: string;
  /** The fast lane's segment, for a client that can open it (lane.ts). */
  lane?: { fd: number; bell: number };
}

/** How the manager ended, as far as this process knows. */
export interface GoneInfo {
  reason: ManagerGoneReason;
  /** e.g. "was killed by SIGKILL", "was stopped", "closed the connection". */
  how: string;
  exitCode: number | null;
  signal: string | null;
}

/** Whether `pid` has ended (a zombie not yet reaped by its parent counts as ended). */
function processEnded(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** How long a broken connection watches a local server's pid, to tell a crash from a hiccup. */
const GONE_CHECK_MS = 500;

export class ManagerConnection {
  /** The server's pid, once the handshake is done. */
  serverPid: number | undefined;
  /** Resolves when the handshake is done; rejects with why the connection failed. */
  readonly ready: Promise<void>;
  private readonly socket: Socket;
  private readonly writer: FrameWriter<Request>;
  private readonly pending = new Map<number, Call>();
  private nextCall = 1;
  private gone: GoneInfo | undefined;
  private goneSince: Promise<GoneInfo> | undefined;
  private closing = false;
  private connected = false;
  private held: Request[] = [];
  /** The shared-memory fast lane to a local server (lane.ts), once opened. */
  private lane: ClientLane | undefined;
  /** @internal Calls that left by the lane (for tests). */
  laneCalls = 0;
  private readonly ring = (): void => {
    this.writer.send([0, 0, 'lane', []]);
    this.writer.flush();
  };

  /**
   * `explain` is asked how the manager ended when the connection breaks (the owner knows its
   * exit code and signal); without it, the connection says what it can see.
   */
  constructor(
    readonly target: ManagerTarget,
    readonly address: string,
    readonly key: Buffer,
    private readonly explain?: () => Promise<GoneInfo | undefined>,
    /** Keep the program alive until connected (someone awaits `ready`). */
    awaited = false,
  ) {
    this.socket = connect('path' in target ? { path: target.path } : target);
    if (!('path' in target)) this.socket.setNoDelay(true);
    if (!awaited) this.socket.unref();
    this.writer = new FrameWriter<Request>(this.socket, (req, err) =>
      this.settle(req[0], false, this.unsendable(req, err)),
    );
    this.ready = new Promise<void>((resolve, reject) => {
      this.socket.once('connect', () => {
        offerHandshake(this.socket, key, address).then(
          (rest) => {
            this.start(rest);
            resolve();
          },
          (err: Error) => {
            this.fail(err);
            reject(err);
          },
        );
      });
      this.socket.once('error', (err: NodeJS.ErrnoException) => {
        if (this.connected) return;
        const why =
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? `${err.code} (no manager listens there: it was stopped, or never started)`
            : (err.code ?? err.message);
        const gone = new ManagerGoneError(
          `could not connect to the manager at ${address}: ${why}`,
          address,
          'unreachable',
          undefined,
          null,
          null,
        );
        this.fail(gone);
        reject(gone);
      });
    });
    // Nobody may be waiting on `ready` (a proxy revived in a worker connects lazily).
    this.ready.catch(() => {});
  }

  private start(rest: Buffer): void {
    this.connected = true;
    if (this.pending.size === 0) this.socket.unref();
    const reader = new FrameReader((replies) => {
      for (const r of replies as Reply[]) {
        if (r[0] === 0) this.hello(r[2] as Hello);
        else this.settle(r[0], r[1] !== 0, r[2]);
      }
    });
    this.socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        this.socket.destroy(err as Error);
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => void this.lost());
    if (rest.length > 0) reader.push(rest);
    for (const req of this.held) this.writer.send(req);
    this.held = [];
  }

  private hello(hello: Hello): void {
    this.serverPid = hello.pid;
    if (!hello.lane) return;
    let opened = false;
    const addon = LANE_ENABLED && 'path' in this.target ? sharedMemoryAddon(false) : undefined;
    if (addon) {
      try {
        this.lane = openLane(addon, hello.pid, hello.lane);
        opened = true;
      } catch {
        // Another machine or namespace, or not allowed to open the server's memory: the socket.
      }
    }
    // The server closes its end of the segment either way.
    this.notify('lane', [opened]);
  }

  /** Spins on the lane for call `id`'s reply; when it comes by the socket instead, leaves it. */
  private awaitLane(id: number): void {
    const lane = this.lane;
    if (!lane || !this.pending.has(id)) return;
    const text = lane.await(CLIENT_SPIN_US, CLIENT_WAIT_US);
    if (text === undefined) return;
    let r: Reply;
    try {
      r = JSON.parse(text) as Reply;
    } catch (err) {
      this.socket.destroy(err as Error);
      return;
    }
    this.settle(r[0], r[1] !== 0, r[2]);
  }

  private settle(id: number, ok: boolean, value: unknown): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.socket.unref();
    if (ok) call.resolve(value);
    else if (value instanceof Error) call.reject(value);
    else {
      const err = decodeThrown(value as ThrownRecord);
      err.stack = `${err.stack ?? String(err)}\n    at manager ${this.address}: ${call.what}`;
      call.reject(err);
    }
  }

  /** Calls `method` of object `object` (0: the manager); `what` names it in errors. */
  /** Why a call could not be sent: its argument that cannot be, by position, as a pool says. */
  private unsendable(req: Request, err: Error): Error {
    const what = this.pending.get(req[0])?.what ?? `${req[2]}()`;
    const args = req[3];
    for (let i = 0; i < args.length; i++) {
      try {
        serialize(args[i]);
      } catch (cause) {
        return new SerializationError(
          `argument ${i} of ${what} cannot be sent to the manager: ${unsendableReason(args[i], cause)}`,
          'argument',
          i,
          what,
          { cause },
        );
      }
    }
    return err;
  }

  call(object: number, method: string, args: unknown[], what: string): Promise<unknown> {
    if (this.gone) return Promise.reject(this.goneError(what, this.gone));
    // Trailing undefined arguments are the method's defaults anyway; without them, most calls
    // travel as JSON (see frames.ts).
    let n = args.length;
    while (n > 0 && args[n - 1] === undefined) n--;
    if (n < args.length) args = args.slice(0, n);
    const id = this.nextCall++;
    const req: Request = [id, object, method, args];
    // Alone in flight, as JSON: by the shared-memory lane, earlier frames leaving first.
    if (this.lane && this.pending.size === 0 && this.lane.idle() && jsonExact(req)) {
      this.writer.flush();
      if (this.lane.send(JSON.stringify(req), this.writer.framesSent, this.ring)) {
        this.laneCalls++;
        return new Promise((resolve, reject) => {
          this.pending.set(id, { resolve, reject, what });
          this.socket.ref();
          queueMicrotask(() => this.awaitLane(id));
        });
      }
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      if (this.pending.size === 1) this.socket.ref();
      this.push(req);
    });
  }

  /** Sends without waiting for a reply (reference counts). */
  notify(method: string, args: unknown[]): void {
    if (!this.gone) this.push([0, 0, method, args]);
  }

  private push(req: Request): void {
    if (this.connected) this.writer.send(req);
    else this.held.push(req);
  }

  /** @internal Whether calls may take the shared-memory lane. */
  hasLane(): boolean {
    return this.lane !== undefined;
  }

  isGone(): boolean {
    return this.gone !== undefined;
  }

  /** Closes this connection on purpose; pending and later calls fail with `how`. */
  close(info: GoneInfo): void {
    if (this.gone) return;
    this.closing = true;
    this.fail(undefined, info);
    this.socket.destroy();
  }

  private async lost(): Promise<void> {
    if (this.gone || this.closing) return;
    this.goneSince ??= this.describeLoss();
    this.fail(undefined, await this.goneSince);
  }

  private async describeLoss(): Promise<GoneInfo> {
    const known = await this.explain?.();
    if (known) return known;
    const pid = this.serverPid;
    const until = performance.now() + GONE_CHECK_MS;
    let ended = false;
    while (pid !== undefined && this.address.startsWith('unix:')) {
      ended = processEnded(pid);
      if (ended || performance.now() > until) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (ended) {
      return {
        reason: 'connection-lost',
        how: 'is gone (its process no longer exists)',
        exitCode: null,
        signal: null,
      };
    }
    return {
      reason: 'connection-lost',
      how: 'closed the connection',
      exitCode: null,
      signal: null,
    };
  }

  private goneError(what: string, info: GoneInfo): ManagerGoneError {
    const pid = this.serverPid !== undefined ? ` (pid ${this.serverPid})` : '';
    return new ManagerGoneError(
      `${what}: the manager at ${this.address}${pid} ${info.how}`,
      this.address,
      info.reason,
      this.serverPid,
      info.exitCode,
      info.signal,
    );
  }

  /** Ends the connection: every pending call fails, and every later call fails at once. */
  private fail(error: Error | undefined, info?: GoneInfo): void {
    if (this.gone) return;
    this.gone = info ?? {
      reason: error instanceof ManagerGoneError ? error.reason : 'connection-lost',
      how:
        error instanceof AuthenticationError
          ? 'refused this client (authentication failed)'
          : 'could not be reached',
      exitCode: null,
      signal: null,
    };
    const calls = [...this.pending.values()];
    this.pending.clear();
    this.lane = undefined;
    this.held = [];
    this.socket.unref();
    for (const call of calls) call.reject(error ?? this.goneError(call.what, this.gone));
  }
}
