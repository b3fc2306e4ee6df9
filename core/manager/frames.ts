/**
 * The manager's wire, after the handshake (`auth.ts`): length-prefixed frames, each one an array
 * of messages. Both sides gather what they send during a tick and write it as one frame, so many
 * calls in flight cost one write and one wake-up of the other side.
 *
 * A frame is JSON when JSON carries it exactly (most calls: numbers, strings, plain arrays and
 * objects), V8-serialized otherwise (Map, Set, bigint, Date, typed arrays, undefined, NaN, ...):
 * V8's serializer costs about ten times JSON's on small messages, and a round trip has two.
 */
import type { Socket } from 'node:net';
import { deserialize, serialize } from 'node:v8';
import type { ThrownRecord } from '../error-codec';

/** [call id, object id (0: the manager itself), method, arguments]; call id 0: no reply wanted. */
export type Request = [number, number, string, unknown[]];
/** [call id, 1, value], [call id, 2] (the value is undefined), or [call id, 0, what was thrown]. */
export type Reply = [number, 1, unknown] | [number, 2] | [number, 0, ThrownRecord];

const JSON_FRAME = 0x4a;
const V8_FRAME = 0x56;
const MAX_DEPTH = 32;

/** Whether JSON.parse(JSON.stringify(value)) gives back exactly `value`. */
export function jsonExact(value: unknown, depth = 0): boolean {
  try {
    return isJsonExact(value, depth);
  } catch {
    // A revoked proxy, or a trap or getter that throws: V8's serializer says why.
    return false;
  }
}

function isJsonExact(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object': {
      if (value === null) return true;
      if (depth > MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          // `i in value`: a hole would come back as null.
          if (!(i in value) || !isJsonExact(value[i], depth + 1)) return false;
        }
        return true;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return false;
      for (const key in value) {
        if (!isJsonExact((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Larger frames are refused: a peer that claims more is broken or hostile. */
export const MAX_FRAME = 256 * 1024 * 1024;

/** Cuts a byte stream into frames, and hands each frame's messages to `onMessages`. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private need = -1;

  constructor(private readonly onMessages: (messages: unknown[]) => void) {}

  /** Throws on a frame that is too large or does not decode. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    for (;;) {
      if (this.need < 0) {
        if (this.size < 4) return;
        this.need = this.take(4).readUInt32LE(0);
        if (this.need > MAX_FRAME) throw new Error(`frame of ${this.need} bytes is too large`);
      }
      if (this.size < this.need) return;
      const body = this.take(this.need);
      this.need = -1;
      const messages =
        body[0] === JSON_FRAME
          ? (JSON.parse(body.toString('utf8', 1)) as unknown)
          : body[0] === V8_FRAME
            ? (deserialize(body.subarray(1)) as unknown)
            : undefined;
      if (!Array.isArray(messages)) throw new Error('a frame that is not a message list');
      this.onMessages(messages);
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.size);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.size -= n;
    return out;
  }
}

/** One frame holding `messages`. Throws the serializer's error for a value that cannot travel. */
export function encodeFrame(messages: unknown[]): Buffer {
  if (jsonExact(messages, 0)) {
    const text = JSON.stringify(messages);
    const length = Buffer.byteLength(text);
    const frame = Buffer.allocUnsafe(5 + length);
    frame.writeUInt32LE(length + 1, 0);
    frame[4] = JSON_FRAME;
    frame.write(text, 5, 'utf8');
    return frame;
  }
  const body = serialize(messages);
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame.writeUInt32LE(body.length + 1, 0);
  frame[4] = V8_FRAME;
  body.copy(frame, 5);
  return frame;
}

/**
 * Gathers messages and writes them as one frame at the end of the tick. A message that cannot
 * be serialized is found and handed to `onUnsendable`; the others still leave.
 */
export class FrameWriter<M> {
  private outbox: M[] = [];
  private scheduled = false;
  /** Frames written so far (the fast lane orders its calls after them: lane.ts). */
  framesSent = 0;

  constructor(
    private readonly socket: Socket,
    private readonly onUnsendable: (message: M, error: Error) => void,
  ) {}

  send(message: M): void {
    this.outbox.push(message);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.outbox.length === 0) return;
    const messages = this.outbox;
    this.outbox = [];
    if (this.socket.destroyed) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(messages);
    } catch {
      const good = messages.filter((m) => {
        try {
          serialize(m);
          return true;
        } catch (err) {
          this.onUnsendable(m, err as Error);
          return false;
        }
      });
      if (good.length === 0) return;
      frame = encodeFrame(good);
    }
    this.framesSent++;
    this.socket.write(frame);
  }
}
