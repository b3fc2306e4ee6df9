/**
 * Columns of a table kept in typed arrays (the Store's held tasks, timeline bars, the panel's
 * lanes and marks): one growth rule for all of them. No Node import: the webview bundles it too.
 */
export type Column =
  Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array | Float64Array;

/** `column` if it holds `n` values; else a copy at least twice as long, its values kept. */
export function grown<T extends Column>(column: T, n: number): T {
  if (n <= column.length) return column;
  const bigger = new (column.constructor as new (length: number) => T)(
    Math.max(n, column.length * 2),
  );
  bigger.set(column);
  return bigger;
}
