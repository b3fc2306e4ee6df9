/**
 * The trace protocol's version, apart from its definitions (protocol.ts): the emitter, loaded by
 * every program that uses the library (and by each of its workers), needs only this number, and
 * the definitions load TypeBox (over 100 ms).
 */

/**
 * The version producers stamp on every event. v2 added the `tasks` event (many task events in one
 * line, see task-batch.ts); every other event is as in v1, and consumers read v1 traces too.
 */
export const PROTOCOL_VERSION = 2;
/** The oldest version consumers read. */
export const OLDEST_PROTOCOL_VERSION = 1;
