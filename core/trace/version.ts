/**
 * The trace protocol's version, on its own: the library stamps it on every event, and importing
 * it from protocol.ts would build every TypeBox schema there (100+ ms) in each program and worker.
 */
export const PROTOCOL_VERSION = 1;
