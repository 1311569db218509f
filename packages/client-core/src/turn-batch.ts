/**
 * Items gathered during one turn of the event loop and handed to `send` together at its end
 * (setImmediate), or at once when they reach `maxBytes`. Work that arrives in many small callbacks (one per
 * socket read, one per gRPC message) then leaves in one write instead of one each.
 */
export class TurnBatch<T> {
  private items: T[] = [];
  private bytes = 0;

  constructor(
    private readonly send: (items: T[]) => void,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Adds an item of about `bytes` bytes to this turn's batch. */
  push(item: T, bytes = 0): void {
    if (this.items.length === 0) setImmediate(this.flush);
    this.items.push(item);
    this.bytes += bytes;
    if (this.bytes >= this.maxBytes) this.flush();
  }

  /** Takes the first unsent item that matches out of the batch; false when there is none. */
  remove(match: (item: T) => boolean): boolean {
    const at = this.items.findIndex(match);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }

  /** Drops the unsent items. */
  clear(): void {
    this.items = [];
    this.bytes = 0;
  }

  /** Sends what was gathered now (nothing when empty). */
  readonly flush = (): void => {
    const items = this.items;
    if (items.length === 0) return;
    this.clear();
    this.send(items);
  };
}
