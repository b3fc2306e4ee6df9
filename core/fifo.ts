/**
 * A first-in, first-out list taken from its head: an index moves instead of the items. An
 * array's shift() copies the whole array whenever the engine cannot move its start (a large
 * array, or while the garbage collector marks); the slots taken here are dropped now and then,
 * in one splice.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  first(): T | undefined {
    return this.items[this.head];
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return item;
  }

  /** Puts `items` back at the head, in their order. */
  unshift(items: readonly T[]): void {
    this.items.splice(this.head, 0, ...items);
  }

  /** Takes out the first item `match` accepts, wherever it is. */
  take(match: (item: T) => boolean): T | undefined {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i]!;
      if (match(item)) {
        this.items.splice(i, 1);
        return item;
      }
    }
    return undefined;
  }

  /** Takes out every item, in order. */
  takeAll(): T[] {
    const items = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return items;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}
