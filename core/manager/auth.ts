/**
 * The manager's handshake: an HMAC-SHA256 challenge-response in both directions, before any
 * frame is read, so a stranger's bytes are never deserialized and neither side talks to a peer
 * that does not know the authkey.
 *
 *   server → client  MAGIC (8 bytes) + server nonce (32)
 *   client → server  HMAC(key, "client" + server nonce) (32) + client nonce (32)
 *   server → client  1 + HMAC(key, "server" + client nonce + server nonce) (32), or 0 and close
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { AuthenticationError } from '../errors';

const MAGIC = Buffer.from('PSMGR\x00\x01\x00', 'latin1');
const NONCE = 32;
const MAC = 32;
/** A peer that does not finish the handshake in this time is dropped. */
export const HANDSHAKE_MS = 10_000;

export type AuthKey = string | Uint8Array;

export function keyBytes(key: AuthKey): Buffer {
  return typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
}

function mac(key: Buffer, label: string, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key).update(label);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Reads exact byte counts from a socket during the handshake; leaves the rest for the frames. */
class Bytes {
  private buffered = Buffer.alloc(0);
  private want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    this.check();
  };
  private readonly onEnd = (): void => {
    this.ended = new Error('the peer closed the connection during the handshake');
    this.check();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = { n, resolve, reject };
      this.check();
    });
  }

  private check(): void {
    const want = this.want;
    if (!want) return;
    if (this.buffered.length >= want.n) {
      this.want = undefined;
      const out = this.buffered.subarray(0, want.n);
      this.buffered = this.buffered.subarray(want.n);
      want.resolve(out);
    } else if (this.ended) {
      this.want = undefined;
      want.reject(this.ended);
    }
  }

  /** Stops listening; returns what arrived past the handshake. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    return this.buffered;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Server side. Resolves with the bytes after the handshake; rejects (and closes) a stranger. */
export async function acceptHandshake(socket: Socket, key: Buffer): Promise<Buffer> {
  const bytes = new Bytes(socket);
  const serverNonce = randomBytes(NONCE);
  socket.write(Buffer.concat([MAGIC, serverNonce]));
  try {
    const answer = await withTimeout(bytes.read(MAC + NONCE), HANDSHAKE_MS, 'the handshake');
    const proof = answer.subarray(0, MAC);
    const clientNonce = answer.subarray(MAC);
    if (!timingSafeEqual(proof, mac(key, 'client', serverNonce))) {
      socket.end(Buffer.from([0]));
      throw new Error('wrong authkey');
    }
    socket.write(Buffer.concat([Buffer.from([1]), mac(key, 'server', clientNonce, serverNonce)]));
    return bytes.detach();
  } catch (err) {
    bytes.detach();
    socket.destroySoon();
    throw err;
  }
}

/** Client side. Resolves with the bytes after the handshake; rejects with AuthenticationError. */
export async function offerHandshake(
  socket: Socket,
  key: Buffer,
  address: string,
): Promise<Buffer> {
  const bytes = new Bytes(socket);
  const refuse = (why: string): AuthenticationError => {
    bytes.detach();
    socket.destroy();
    return new AuthenticationError(`the connection to the manager at ${address} ${why}`, address);
  };
  let hello: Buffer;
  try {
    hello = await withTimeout(bytes.read(MAGIC.length + NONCE), HANDSHAKE_MS, 'the handshake');
  } catch (err) {
    throw refuse(`failed before the handshake (${(err as Error).message}): is a manager there?`);
  }
  if (!hello.subarray(0, MAGIC.length).equals(MAGIC))
    throw refuse('was refused: what answers there is not a Poolscope manager');
  const serverNonce = hello.subarray(MAGIC.length);
  const clientNonce = randomBytes(NONCE);
  socket.write(Buffer.concat([mac(key, 'client', serverNonce), clientNonce]));
  let status: Buffer;
  try {
    status = await withTimeout(bytes.read(1), HANDSHAKE_MS, 'the handshake');
  } catch (err) {
    throw refuse(`broke during the handshake (${(err as Error).message})`);
  }
  if (status[0] !== 1)
    throw refuse('was refused: wrong authkey (the manager could not verify our answer)');
  let proof: Buffer;
  try {
    proof = await withTimeout(bytes.read(MAC), HANDSHAKE_MS, 'the handshake');
  } catch (err) {
    throw refuse(`broke during the handshake (${(err as Error).message})`);
  }
  if (!timingSafeEqual(proof, mac(key, 'server', clientNonce, serverNonce)))
    throw refuse('was refused: the manager did not prove it knows the authkey');
  return bytes.detach();
}
