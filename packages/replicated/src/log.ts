/**
 * The reason of an append that certainly added nothing (the log refused it, or never got it): the
 * proposer can say so at once. Any other failure of an append leaves its outcome unknown.
 */
export const NOT_APPENDED = 'NOT_APPENDED';

/**
 * The id of a read barrier's entry: an entry with no command, appended by readBarrier(). Every replica
 * skips it (it only advances the position), so it changes no state.
 */
export const BARRIER_ID = '~barrier';

/** One entry of an ordered log: a proposed command, at the position the log gave it. */
export interface LogEntry {
  /** 1, 2, 3, …: every node sees the same entries at the same positions. */
  position: number;
  /** The proposal's id (unique per proposal; the same id appended again is the same entry). */
  id: string;
  data: Uint8Array;
}

/** A state machine's state at a position of its log: what a node loads instead of replaying that far. */
export interface Snapshot {
  position: number;
  data: Uint8Array;
}

/** Follows a log: stop() ends it. */
export interface Following {
  stop(): void;
  /**
   * A caller waits until `position` is delivered (its proposal's entry, or a read barrier). A log whose
   * live delivery can stall while the log itself still works (a JetStream consumer on a server cut off
   * from this node) fetches the entries up to there another way if they do not arrive soon.
   */
  need?(position: number): void;
}

/**
 * The ordered log a replicated state machine is fed by. Two implementations share this interface: a
 * local log (level on one node) and a NATS JetStream stream (one, or three replicas on a cluster).
 */
export interface ReplicatedLog {
  readonly kind: 'local' | 'jetstream';
  /** The largest entry the log takes, in bytes; a larger one is refused before it is sent. */
  readonly maxEntryBytes: number;
  /**
   * Appends an entry and resolves with its position once the log holds it durably (on a cluster: on a
   * majority). Appending the same id again (a retry after an unknown outcome) resolves with the first
   * entry's position and adds nothing, inside the log's deduplication window.
   */
  append(id: string, data: Uint8Array, signal?: AbortSignal): Promise<number>;
  /**
   * The position of the last entry the log holds now, asked of the log's leader: a read barrier (once a
   * node has applied that far, its state reflects every entry appended before the call).
   */
  lastPosition(signal?: AbortSignal): Promise<number>;
  /**
   * A linearizable read barrier: a position such that a replica that has applied it reflects every entry
   * acknowledged before the call began. On one node that is the last position; on a replicated log it is
   * the position of a no-op entry (id BARRIER_ID) the log's majority committed, because a leader cut off
   * from its majority may not know yet that another leader took over and keeps answering with its own
   * last position (a stale read).
   */
  readBarrier(signal?: AbortSignal): Promise<number>;
  /**
   * Delivers every entry after `after`, in order, then new ones as they are appended. `onGap` is called
   * (and following stops) when the entries just after `after` are no longer in the log (trimmed below a
   * snapshot): load the latest snapshot and follow again from its position.
   */
  follow(
    after: number,
    onEntry: (entry: LogEntry) => void,
    onGap: (firstHeld: number) => void,
    onError: (err: Error) => void,
  ): Promise<Following>;
  /** The latest snapshot saved, if any. */
  loadSnapshot(): Promise<Snapshot | undefined>;
  /** The position of the latest snapshot saved (by any node), without reading it; 0 when none. */
  snapshotPosition(): Promise<number>;
  /** Saves a snapshot (it replaces the one before it). */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /** Removes the entries below `position` (the entry at `position` is kept). */
  trim(position: number): Promise<void>;
  close(): Promise<void>;
}
