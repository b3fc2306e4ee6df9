/**
 * The fast lane: a mailbox in shared memory beside a local client's Unix socket, for the call a
 * program awaits alone (`await v.get()`, a locked increment's four steps). Over the socket such a
 * call costs two process wake-ups through the kernel and the event loops (about 20–30k round trips
 * a second on a busy 2-core machine); through the lane, while both sides are busy, it costs two
 * cache-line transfers and the JSON.
 *
 * One segment per connection (a memfd made by the server, offered in its hello, opened by the
 * client through /proc/<server pid>/fd/<fd>, so only a process that may read the server's memory
 * can open it; the socket's authkey handshake has happened before). It holds one request slot
 * and one reply slot. The client uses it only when no other call of its connection is in flight
 * and the call travels as JSON; everything else goes by the socket, which stays the only wake-up:
 *
 * - the server, after serving a lane call, keeps polling its lanes for `SERVER_SPIN_US` before it
 *   goes back to sleep in its event loop; it says so in each lane's AWAKE word, and a client that
 *   finds it asleep rings it with a frame on the socket;
 * - the client spins on the reply for up to `CLIENT_SPIN_US`, then parks: the server then answers
 *   that call on the socket, as any other.
 *
 * Order: a lane request carries how many frames its client had written to the socket before it;
 * the server takes it only after reading as many. Replies need no order: a lane call is the only
 * call of its connection in flight.
 *
 * States of the slot (word STATE), each move made by the side named:
 *   IDLE 0 -client-> REQUEST 1 -server-> TAKEN 2 -server-> REPLIED 3 -client-> IDLE
 *   REQUEST -client-> PARKED_REQUEST 4 -server-> PARKED_TAKEN 5 (client gave up spinning)
 *   TAKEN -client-> PARKED_TAKEN; PARKED_TAKEN or TAKEN -server-> IDLE (answer on the socket)
 */
import type { SharedMemoryAddon } from '../shared/native';

export const LANE_SIZE = 64 * 1024;
const HEADER = 64;
const REQUEST_AT = HEADER;
const REPLY_AT = LANE_SIZE / 2;
const REQUEST_MAX = REPLY_AT - REQUEST_AT;
const REPLY_MAX = LANE_SIZE - REPLY_AT;
/** The server's bell: one small segment that every lane client maps. */
export const BELL_SIZE = 4096;

// Int32 word indexes in a lane.
const STATE = 0;
/** 1 while the client sleeps on STATE in futexWait: the server wakes it after replying. */
const CLIENT_WAITING = 1;
const REQUEST_LENGTH = 2;
const REQUEST_FRAMES = 3;
const REPLY_LENGTH = 4;

// Int32 word indexes in the bell.
/** Where the server is: ASLEEP_IN_LOOP, POLLING, or ASLEEP_ON_BELL. */
const SERVER = 0;
/** Bumped and woken by a client whose call finds the server waiting on it. */
const BELL = 1;
export const ASLEEP_IN_LOOP = 0;
export const POLLING = 1;
export const ASLEEP_ON_BELL = 2;

export const IDLE = 0;
export const REQUEST = 1;
export const TAKEN = 2;
export const REPLIED = 3;
export const PARKED_REQUEST = 4;
export const PARKED_TAKEN = 5;

function envMicros(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
}

/**
 * How long a client spins on a lane reply before it sleeps on it (futex): enough for the server
 * to serve a call while both run. A spin that fails (the server was not running: a busy
 * machine) makes the client skip spinning for the next 1, 2, 4, ... 64 calls (see `await`); the
 * server always spins, so a client's spin fails for want of CPU, not because it is asleep.
 */
export const CLIENT_SPIN_US = envMicros('POOLSCOPE_MANAGER_CLIENT_SPIN_US', 20);
/** How long in all a client waits for a lane reply before it parks and waits on the socket. */
export const CLIENT_WAIT_US = envMicros('POOLSCOPE_MANAGER_CLIENT_WAIT_US', 1000);
/**
 * How long the server spins on its lanes after a lane call before it sleeps on its bell: enough
 * for a client's next awaited call to arrive while both run.
 */
export const SERVER_SPIN_US = envMicros('POOLSCOPE_MANAGER_SERVER_SPIN_US', 50);
/** How long in all the server waits for the next lane call before it goes back to its loop. */
export const SERVER_WAIT_US = envMicros('POOLSCOPE_MANAGER_SERVER_WAIT_US', 500);
/** POOLSCOPE_MANAGER_LANE=0 turns the lane off (every call goes by the socket). */
export const LANE_ENABLED = process.env.POOLSCOPE_MANAGER_LANE !== '0';

/** Writes `text` at `at` if it fits in `max` bytes; returns the byte count, or -1. */
function put(bytes: Buffer, at: number, max: number, text: string): number {
  if (text.length > max) return -1;
  if (text.length * 3 > max && Buffer.byteLength(text) > max) return -1;
  return bytes.write(text, at, 'utf8');
}

class Lane {
  readonly words: Int32Array;
  readonly bytes: Buffer;

  constructor(
    protected readonly addon: SharedMemoryAddon,
    memory: ArrayBuffer,
  ) {
    this.words = new Int32Array(memory, 0, HEADER / 4);
    this.bytes = Buffer.from(memory);
  }

  state(): number {
    return Atomics.load(this.words, STATE);
  }

  cas(from: number, to: number): boolean {
    return Atomics.compareExchange(this.words, STATE, from, to) === from;
  }
}

/** The client's side of a lane, with the server's bell. */
export class ClientLane extends Lane {
  /** Calls left to wait without spinning, and how many the next failed spin skips. */
  private skip = 0;
  private backoff = 1;
  constructor(
    addon: SharedMemoryAddon,
    memory: ArrayBuffer,
    private readonly bell: Int32Array,
  ) {
    super(addon, memory);
  }

  /** Whether a new call may use the lane (the slot is free). */
  idle(): boolean {
    return this.state() === IDLE;
  }

  /**
   * Puts a request (JSON text) in the slot. Returns false when it does not fit (send it by the
   * socket); `ring` is called when the server sleeps in its event loop and must be woken there.
   */
  send(text: string, framesBefore: number, ring: () => void): boolean {
    const n = put(this.bytes, REQUEST_AT, REQUEST_MAX, text);
    if (n < 0) return false;
    this.words[REQUEST_LENGTH] = n;
    this.words[REQUEST_FRAMES] = framesBefore;
    Atomics.store(this.words, STATE, REQUEST);
    const server = Atomics.load(this.bell, SERVER);
    if (server === ASLEEP_ON_BELL) {
      Atomics.add(this.bell, BELL, 1);
      this.addon.futexWake(this.bell, BELL, 1);
    } else if (server === ASLEEP_IN_LOOP) {
      ring();
    }
    return true;
  }

  /**
   * Waits for the reply: spins, then sleeps on the slot. Returns the reply's JSON text, or
   * undefined when it will come by the socket instead (this side parked after `waitMicros`, or
   * the server chose the socket).
   */
  await(spinMicros: number, waitMicros: number): string | undefined {
    const words = this.words;
    const start = performance.now();
    const spinning = this.skip === 0 && spinMicros > 0;
    if (!spinning && this.skip > 0) this.skip--;
    const spinUntil = spinning ? start + spinMicros / 1000 : 0;
    const until = start + waitMicros / 1000;
    let spins = 0;
    let slept = false;
    for (;;) {
      const s = Atomics.load(words, STATE);
      if (s === REPLIED) {
        if (spinning) {
          if (slept) {
            this.skip = this.backoff;
            this.backoff = Math.min(64, this.backoff * 2);
          } else {
            this.backoff = 1;
          }
        }
        return this.takeReply();
      }
      if (s === IDLE) return undefined;
      // performance.now() costs more than a poll: look at the clock every 64 polls.
      if ((++spins & 63) !== 0) continue;
      const now = performance.now();
      if (now < spinUntil) continue;
      if (now >= until) {
        if (s === REQUEST && this.cas(REQUEST, PARKED_REQUEST)) return undefined;
        if (s === TAKEN && this.cas(TAKEN, PARKED_TAKEN)) return undefined;
        continue;
      }
      slept = true;
      Atomics.store(words, CLIENT_WAITING, 1);
      this.addon.futexWait(words, STATE, s, until - now);
      Atomics.store(words, CLIENT_WAITING, 0);
    }
  }

  private takeReply(): string {
    const n = this.words[REPLY_LENGTH]!;
    const text = this.bytes.toString('utf8', REPLY_AT, REPLY_AT + n);
    Atomics.store(this.words, STATE, IDLE);
    return text;
  }
}

/** The server's side of a lane. */
export class ServerLane extends Lane {
  /**
   * The pending request's JSON text if there is one the server may take now (its client's
   * earlier socket frames all read), else undefined.
   */
  take(framesRead: number): string | undefined {
    const s = this.state();
    if (s !== REQUEST && s !== PARKED_REQUEST) return undefined;
    if (((framesRead - this.words[REQUEST_FRAMES]!) | 0) < 0) return undefined;
    if (!this.cas(s, s === REQUEST ? TAKEN : PARKED_TAKEN)) {
      // The client parked between our load and our exchange: take it parked.
      if (!this.cas(PARKED_REQUEST, PARKED_TAKEN)) return undefined;
    }
    const n = this.words[REQUEST_LENGTH]!;
    return this.bytes.toString('utf8', REQUEST_AT, REQUEST_AT + n);
  }

  /** Whether a request waits in the slot, not yet taken. */
  hasRequest(): boolean {
    const s = this.state();
    return s === REQUEST || s === PARKED_REQUEST;
  }

  /**
   * Answers the taken call: true when the reply went in the slot, false when it must go by the
   * socket (the client parked, the reply does not fit, or `text` is undefined: the call waits
   * on something and will be answered later); the slot is then free again.
   */
  reply(text: string | undefined): boolean {
    if (text !== undefined && this.state() === TAKEN) {
      const n = put(this.bytes, REPLY_AT, REPLY_MAX, text);
      if (n >= 0) {
        this.words[REPLY_LENGTH] = n;
        if (this.cas(TAKEN, REPLIED)) {
          this.wake();
          return true;
        }
      }
    }
    // TAKEN or PARKED_TAKEN: only the server moves the slot on from here, but the client may
    // still be parking (TAKEN -> PARKED_TAKEN) at this moment.
    if (this.cas(TAKEN, IDLE)) this.wake();
    else this.cas(PARKED_TAKEN, IDLE);
    return false;
  }

  private wake(): void {
    if (Atomics.load(this.words, CLIENT_WAITING) === 1) this.addon.futexWake(this.words, STATE, 1);
  }
}

/** The server's bell: where it says whether it polls, and where clients wake it. */
export class Bell {
  readonly words: Int32Array;

  constructor(
    private readonly addon: SharedMemoryAddon,
    readonly fd: number,
  ) {
    this.words = new Int32Array(addon.mapSegment(fd, BELL_SIZE), 0, 2);
  }

  set(where: number): void {
    Atomics.store(this.words, SERVER, where);
  }

  /** The bell's count, to wait on. */
  count(): number {
    return Atomics.load(this.words, BELL);
  }

  /** Sleeps until a client rings (the count moves past `count`) or `ms` pass. */
  sleep(count: number, ms: number): void {
    this.addon.futexWait(this.words, BELL, count, ms);
  }
}

/** Server: makes its bell (kept open for the server's life: each client opens it). */
export function createBell(addon: SharedMemoryAddon): Bell {
  const fd = addon.createSegment(BELL_SIZE);
  try {
    return new Bell(addon, fd);
  } catch (err) {
    addon.closeFd(fd);
    throw err;
  }
}

/** Server: makes a lane's segment; the client opens it by the server's pid and this fd. */
export function createLane(addon: SharedMemoryAddon): { fd: number; lane: ServerLane } {
  const fd = addon.createSegment(LANE_SIZE);
  try {
    return { fd, lane: new ServerLane(addon, addon.mapSegment(fd, LANE_SIZE)) };
  } catch (err) {
    addon.closeFd(fd);
    throw err;
  }
}

function openMapping(addon: SharedMemoryAddon, pid: number, fd: number, size: number): ArrayBuffer {
  const mine = addon.openSegment(pid, fd);
  try {
    return addon.mapSegment(mine, size);
  } finally {
    addon.closeFd(mine);
  }
}

/** Client: opens the server's lane segment and bell. Throws when this process may not. */
export function openLane(
  addon: SharedMemoryAddon,
  pid: number,
  fds: { fd: number; bell: number },
): ClientLane {
  const bell = new Int32Array(openMapping(addon, pid, fds.bell, BELL_SIZE), 0, 2);
  return new ClientLane(addon, openMapping(addon, pid, fds.fd, LANE_SIZE), bell);
}
