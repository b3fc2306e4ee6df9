/**
 * The fallback's wire: how a process without the addon operates on shared memory that another
 * process holds as a SharedArrayBuffer (docs/shared-memory.md, "Without the addon").
 *
 * A request is a frame, `[u32 length of the rest][op]...`, whose ops the server runs in order;
 * its reply answers the last op (the ones before are stores and detaches the client held back,
 * which have no reply). Each op is `[u8 code][u32 memory id][u32 byte offset]` and then its
 * arguments, i32 unless said. A reply is `[u32 length of the rest][u8 status][payload]`.
 * Little-endian throughout.
 */

export const Op = {
  /** id and offset 0, then the 32-byte token: the first op of a connection. Reply: 0. */
  HELLO: 1,
  /** Reply: the memory's size in bytes. */
  ATTACH: 2,
  /** No reply. */
  DETACH: 3,
  /** Nothing: a frame that only sends what the client held back. Reply: 0. */
  NOP: 4,
  LOAD: 10,
  /** value */
  STORE: 11,
  /** value; reply: the old value */
  ADD: 12,
  /** value; reply: the old value */
  EXCHANGE: 13,
  /** expected, replacement; reply: the old value */
  COMPARE_EXCHANGE: 14,
  /** A plain read. */
  GET: 15,
  /** value: a plain store, no reply. */
  SET: 16,
  /** expected, replacement, pid, token (Words.claim); reply: the old value */
  CLAIM: 17,
  /** replacement, free, pid, token (Words.claimExchange); reply: the old value */
  CLAIM_EXCHANGE: 18,
  /** free, contended (Words.unclaim); reply: 1 released, 0 it was free */
  UNCLAIM: 19,
  /**
   * replacement, free, pid, token, f64 timeout (Words.claimOrWait); reply: CLAIMED, or what the
   * wait gave.
   */
  CLAIM_OR_WAIT: 24,
  /** expected, f64 timeout in ms (Infinity: none); reply: WAIT_OK, WAIT_NOT_EQUAL, WAIT_TIMED_OUT */
  WAIT: 20,
  /** count (-1: all); reply: how many were woken */
  NOTIFY: 21,
  /** u32 length; reply: BYTES */
  READ: 22,
  /** u32 length, the bytes; reply: 0 */
  WRITE: 23,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** Bytes of every op's head: code, memory id, byte offset. */
export const OP_HEAD = 9;
/** Bytes of the arguments after the head, for ops with fixed arguments. */
export const ARG_BYTES: Partial<Record<Op, number>> = {
  [Op.HELLO]: 32,
  [Op.ATTACH]: 0,
  [Op.DETACH]: 0,
  [Op.NOP]: 0,
  [Op.LOAD]: 0,
  [Op.STORE]: 4,
  [Op.ADD]: 4,
  [Op.EXCHANGE]: 4,
  [Op.COMPARE_EXCHANGE]: 8,
  [Op.GET]: 0,
  [Op.SET]: 4,
  [Op.CLAIM]: 16,
  [Op.CLAIM_EXCHANGE]: 16,
  [Op.UNCLAIM]: 8,
  [Op.CLAIM_OR_WAIT]: 24,
  [Op.WAIT]: 12,
  [Op.NOTIFY]: 4,
  [Op.READ]: 4,
};
export const Status = {
  /** i32 */
  VALUE: 0,
  /** the bytes read */
  BYTES: 1,
  /** utf8 text */
  ERROR: 2,
} as const;

export const WAIT_OK = 0;
export const WAIT_NOT_EQUAL = 1;
export const WAIT_TIMED_OUT = 2;
export const CLAIMED = 3;

export const TOKEN_BYTES = 32;
/** The most bytes one READ or WRITE moves: larger ones are split by the client. */
export const CHUNK = 32 * 1024;

/**
 * The mailbox between a thread and its helper thread (which does the socket I/O while the thread
 * blocks): a SharedArrayBuffer with two Int32 words, then a frame (request, then reply).
 */
export const MAILBOX_STATE = 0;
/** The reason's length in bytes, when GONE (the text is where frames go). */
export const MAILBOX_LENGTH = 1;
export const MAILBOX_DATA = 16;
/** Room for a frame: one CHUNK and the held-back stores of a busy thread. */
export const MAILBOX_BYTES = CHUNK + 16 * 1024;
export const STARTING = 0;
export const IDLE = 1;
export const REQUEST = 2;
export const REPLY = 3;
/** The connection is gone (the reason is in the frame area); set by the helper, for good. */
export const GONE = 4;

/** What the owner and its server thread say to each other. */
export type ToServer =
  { t: 'add'; id: number; buffer: SharedArrayBuffer } | { t: 'drop'; id: number };
/** `newest`: the last id the server was given, so that the owner knows no `add` is on its way. */
export type FromServer = { t: 'idle'; newest: number } | { t: 'error'; message: string };

export interface ServerData {
  address: string;
  token: string;
}

export interface HelperData {
  address: string;
  token: string;
  ownerPid: number;
  mailbox: SharedArrayBuffer;
}
