// The seed's worker: squares every shared value in place (multiprocessing's sharedctypes example).
import type { SharedArray, Value } from 'poolscope';

interface Point {
  x: number;
  y: number;
}

export function modify(
  n: Value<number>,
  x: Value<number>,
  s: SharedArray,
  A: SharedArray<Point>,
): void {
  n.value **= 2;
  x.value **= 2;
  s.value = s.value.toUpperCase();
  for (const a of A) {
    a.x **= 2;
    a.y **= 2;
  }
}
