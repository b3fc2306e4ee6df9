/**
 * The manager's wire, after the handshake (`auth.ts`): length-prefixed frames, each one a V8-
 * serialized array of messages. Both sides gather what they send during a tick and write it as
 * one frame, so many calls in flight cost one write and one wake-up of the other side.
 */
import type { Socket } from 'node:net';
import { deserialize, serialize } from 'node:v8';
import type { ThrownRecord } from '../error-codec';

/** [call id, object id (0: the manager itself), method, arguments]; call id 0: no reply wanted. */
export type Request = [number, number, string, unknown[]];
/** [call id, 1, value] or [call id, 0, what was thrown]. */
export type Reply = [number, 1, unknown] | [number, 0, ThrownRecord];

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
      const messages = deserialize(body) as unknown;
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
  const body = serialize(messages);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(body.length, 0);
  return Buffer.concat([head, body]);
}

/**
 * Gathers messages and writes them as one frame at the end of the tick. A message that cannot
 * be serialized is found and handed to `onUnsendable`; the others still leave.
 */
export class FrameWriter<M> {
  private outbox: M[] = [];
  private scheduled = false;

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
    this.socket.write(frame);
  }
}
