/** Where a manager listens, how that is written, and what its owner and server say to each other. */

/** A Unix socket path, or a TCP host and port. */
export type ManagerTarget = { path: string } | { host: string; port: number };

/**
 * What `Manager.start({ address })` and `Manager.connect(address)` take: a Unix socket path
 * (`'/run/app/manager.sock'`, or `'unix:/run/…'`), `'tcp:host:port'`, or `{ host, port }`.
 */
export type ManagerAddress = string | { host: string; port: number };

export function parseAddress(address: ManagerAddress): ManagerTarget {
  if (typeof address === 'object' && address !== null) {
    if (typeof address.host !== 'string' || !Number.isInteger(address.port))
      throw new TypeError('a TCP address is { host: string, port: integer }');
    return { host: address.host, port: address.port };
  }
  if (typeof address !== 'string' || address === '')
    throw new TypeError(
      `a manager address is a socket path, 'tcp:host:port' or { host, port }, got ${String(address)}`,
    );
  if (address.startsWith('tcp:')) {
    const at = address.lastIndexOf(':');
    const port = Number(address.slice(at + 1));
    const host = address.slice(4, at).replace(/^\[(.*)\]$/, '$1');
    if (at <= 3 || !Number.isInteger(port) || host === '')
      throw new TypeError(`'${address}' is not a TCP address of the form tcp:host:port`);
    return { host, port };
  }
  return { path: address.startsWith('unix:') ? address.slice('unix:'.length) : address };
}

/** `unix:/path` or `tcp:host:port`: how errors, the trace and `manager.address` name it. */
export function formatAddress(target: ManagerTarget): string {
  if ('path' in target) return `unix:${target.path}`;
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `tcp:${host}:${target.port}`;
}

/** Owner → server, over the fork IPC channel (the authkey never appears in argv or env). */
export type ToServer =
  | {
      t: 'init';
      listen: ManagerTarget;
      /** The private directory of the default socket, removed by whoever outlives the other. */
      dir: string | undefined;
      authkey: Uint8Array;
      manager: string;
    }
  | { t: 'stop' };

/** Server → owner. */
export type FromServer = { t: 'listening'; address: string } | { t: 'error'; message: string };
