// Binary min-heap of timed events. Ties on time break by insertion order, so the
// schedule (and hence the run) is a pure function of the seed.

interface Item<T> {
  readonly time: number;
  readonly seq: number;
  readonly value: T;
}

export class EventQueue<T> {
  private readonly items: Item<T>[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(time: number, value: T): void {
    const item = { time, seq: this.seq++, value };
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(item, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = item;
  }

  pop(): { time: number; value: T } | undefined {
    const a = this.items;
    const top = a[0];
    if (top === undefined) return undefined;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let mItem = last;
        if (l < a.length && less(a[l]!, mItem)) {
          m = l;
          mItem = a[l]!;
        }
        if (r < a.length && less(a[r]!, mItem)) {
          m = r;
          mItem = a[r]!;
        }
        if (m === i) break;
        a[i] = mItem;
        i = m;
      }
      a[i] = last;
    }
    return { time: top.time, value: top.value };
  }
}

function less<T>(a: Item<T>, b: Item<T>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
