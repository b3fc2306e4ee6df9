/// <reference lib="dom" />
/**
 * The program's values (error properties, thrown values) as JavaScript text and expandable
 * trees. Values are JSON with tagged objects for what JSON cannot say (docs/protocol.md,
 * "Values"): `{"$undefined":true}` reads `undefined`, `{"$bigint":"10"}` reads `10n`, and so on.
 * Everything is text: this module builds nodes with `textContent` only.
 */
import type { ErrorInfo } from '../core/trace/protocol';
import { h } from './dom';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A tagged leaf as JS text, or undefined when the value is not a tagged leaf. */
export function taggedLeaf(v: unknown): string | undefined {
  if (!isObj(v)) return undefined;
  const keys = Object.keys(v);
  const k = keys[0];
  if (k === undefined || !k.startsWith('$')) return undefined;
  const x = v[k];
  switch (k) {
    case '$undefined':
      return 'undefined';
    case '$bigint':
      return `${String(x)}n`;
    case '$number':
      return String(x);
    case '$date':
      return `Date(${String(x)})`;
    case '$regexp':
      return String(x);
    case '$bytes':
      return `${String(x)}(${String(v.length ?? '?')})`;
    case '$unsendable':
      return `[${String(x)}]`;
    case '$cycle':
      return `[Circular ${String(x)}]`;
    case '$more':
      return `… ${String(x)} more`;
    case '$truncated':
      return typeof x === 'string' ? `${JSON.stringify(x)}… (truncated)` : '… (truncated)';
    default:
      return undefined;
  }
}

/** A one-line preview of a value, as JS. */
export function preview(v: unknown, depth = 0): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);
  if (typeof v !== 'object') return String(v);
  const leaf = taggedLeaf(v);
  if (leaf !== undefined) return leaf;
  if (depth > 1) return Array.isArray(v) ? `Array(${v.length})` : '{…}';
  if (Array.isArray(v)) {
    const items = v.slice(0, 5).map((x) => preview(x, depth + 1));
    return `[${items.join(', ')}${v.length > 5 ? ', …' : ''}]`;
  }
  const o = v as Obj;
  if (Array.isArray(o.$map)) return `Map(${o.$map.length})`;
  if (Array.isArray(o.$set)) return `Set(${o.$set.length})`;
  if (isObj(o.$error)) {
    const e = o.$error as unknown as ErrorInfo;
    return `${e.name}: ${e.message}`;
  }
  const keys = Object.keys(o);
  const parts = keys.slice(0, 4).map((k) => `${k}: ${preview(o[k], depth + 1)}`);
  return `{ ${parts.join(', ')}${keys.length > 4 ? ', …' : ''} }`;
}

function entries(v: unknown): [string, unknown][] | undefined {
  if (Array.isArray(v)) return v.map((x, i) => [String(i), x]);
  if (!isObj(v) || taggedLeaf(v) !== undefined) return undefined;
  if (Array.isArray(v.$map))
    return (v.$map as unknown[]).map((pair, i) =>
      Array.isArray(pair) ? [preview(pair[0]), pair[1]] : [String(i), pair],
    );
  if (Array.isArray(v.$set)) return (v.$set as unknown[]).map((x, i) => [String(i), x]);
  if (isObj(v.$error)) return undefined;
  return Object.entries(v);
}

/**
 * One property as a tree row: `key: value`, expandable (a `<details>`) when the value has
 * children. `renderError` draws nested errors (`{"$error": …}`).
 */
export function propertyNode(
  key: string,
  value: unknown,
  renderError: (e: ErrorInfo) => Node,
  depth = 0,
): HTMLElement {
  const kids = entries(value);
  const keyEl = h('span', { class: 'prop-key' }, key);
  if (isObj(value) && isObj(value.$error)) {
    const d = h(
      'details',
      { class: 'prop' },
      h('summary', null, keyEl, ': ', h('span', { class: 'prop-value' }, preview(value))),
      renderError(value.$error as unknown as ErrorInfo),
    );
    return d;
  }
  if (!kids || kids.length === 0) {
    // A multi-line string (a stack kept as a property) reads better with its line breaks.
    const text = kids
      ? Array.isArray(value)
        ? '[]'
        : '{}'
      : typeof value === 'string' && value.includes('\n')
        ? `\`${value.length > 20_000 ? `${value.slice(0, 20_000)}…` : value}\``
        : preview(value);
    return h(
      'div',
      { class: 'prop leaf' },
      keyEl,
      ': ',
      h('span', { class: `prop-value ${valueClass(value)}` }, text),
    );
  }
  const d = h(
    'details',
    { class: 'prop' },
    h('summary', null, keyEl, ': ', h('span', { class: 'prop-value' }, preview(value))),
  );
  if (depth < 1) d.open = true;
  const body = h('div', { class: 'prop-children' });
  for (const [k, v] of kids.slice(0, 200)) body.append(propertyNode(k, v, renderError, depth + 1));
  if (kids.length > 200)
    body.append(h('div', { class: 'prop leaf' }, `… ${kids.length - 200} more`));
  d.append(body);
  return d;
}

function valueClass(v: unknown): string {
  if (typeof v === 'string') return 'v-string';
  if (typeof v === 'number' || (isObj(v) && ('$bigint' in v || '$number' in v))) return 'v-number';
  if (v === null || typeof v === 'boolean' || (isObj(v) && '$undefined' in v)) return 'v-keyword';
  return 'v-other';
}
