/**
 * A min-heap of (expiresAt, id). Entries are never updated in place: a renewal or change pushes a new entry
 * and the stale one is skipped when it surfaces (the caller checks the item's current expiry).
 */
export class ExpiryHeap<Id = string> {
  private readonly items: Array<{ at: number; id: Id }> = [];

  get size(): number {
    return this.items.length;
  }

  push(at: number, id: Id): void {
    const items = this.items;
    items.push({ at, id });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((items[parent] as { at: number }).at <= at) break;
      [items[i], items[parent]] = [
        items[parent] as { at: number; id: Id },
        items[i] as { at: number; id: Id },
      ];
      i = parent;
    }
  }

  peek(): { at: number; id: Id } | undefined {
    return this.items[0];
  }

  pop(): { at: number; id: Id } | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && (items[l] as { at: number }).at < (items[m] as { at: number }).at) m = l;
        if (r < items.length && (items[r] as { at: number }).at < (items[m] as { at: number }).at) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m] as { at: number; id: Id }, items[i] as { at: number; id: Id }];
        i = m;
      }
    }
    return top;
  }
}
