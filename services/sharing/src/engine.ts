import type { Consistency } from '@backplane/replicated';
import { BackplaneError, type QueueBytes } from '@backplane/runtime';
import type { DurableStart } from './event-store';

/** One key's value as stored. */
export interface Entry {
  key: string;
  value: Uint8Array;
  revision: number;
  /** The revision that created the key (its first put since it was absent). */
  createRevision: number;
  /** ms since the epoch; 0 = never. */
  expiresAt: number;
}

export type ChangeKind = 'PUT' | 'DELETE' | 'EXPIRE';

/** A change, as watches see it (deletes and expiries carry no value). */
export interface Change {
  kind: ChangeKind;
  key: string;
  revision: number;
  value?: Uint8Array;
  /** PUT: the revision that created the key (= revision when this put created it). */
  createRevision?: number;
  expiresAt: number;
}

export type WatchItem = { change: Change } | { synced: true };

export interface PutOptions {
  ttlMs?: number;
  /** Compare-and-set: the revision the key must be at; 0 = must be absent; undefined = no check. */
  expectRevision?: number | undefined;
  /** The client's id for the write: its retries are one write. */
  requestId?: string | undefined;
}

export interface Conflict {
  key: string;
  expected: number;
  /** 0 = absent. */
  actual: number;
}

export interface Transaction {
  reads: Array<{ key: string; revision: number }>;
  puts: Array<{ key: string; value: Uint8Array; ttlMs: number }>;
  removes: string[];
}

export type CommitResult =
  | { committed: true; revision: number }
  | { committed: false; conflicts: Conflict[] };

export interface WatchOptions {
  prefix: boolean;
  /** 0 = current values, then changes. */
  fromRevision: number;
  signal: AbortSignal;
}

/**
 * SharedProperties' store. Both engines (level on one node, NATS JetStream KV across nodes) give the
 * same answers; values, revisions and expiry behave the same. Input is validated before it gets here.
 */
export interface PropertiesEngine {
  readonly kind: 'embedded' | 'nats';
  /** Writes a value; a failed expectRevision check throws FAILED_PRECONDITION (REVISION_MISMATCH). */
  put(key: string, value: Uint8Array, options?: PutOptions): Promise<number>;
  /** Linearizable unless asked otherwise: reflects every write acknowledged before the call, at any node. */
  get(key: string, consistency?: Consistency): Promise<Entry | undefined>;
  /** Returns the revision of the delete, or undefined when there was nothing to delete. */
  remove(key: string, expectRevision?: number, requestId?: string): Promise<number | undefined>;
  /** Keys after `startAfter` under `prefix`, in key order; `more` = there are others after them. */
  list(
    prefix: string,
    startAfter: string,
    limit: number,
    consistency?: Consistency,
  ): Promise<{ entries: Entry[]; more: boolean }>;
  watch(key: string, options: WatchOptions): AsyncIterable<WatchItem>;
  commit(txn: Transaction, requestId?: string): Promise<CommitResult>;
  close(): Promise<void>;
}

/** SharedEvents' bus. */
export interface EventPayload {
  topic: string;
  payload: { $case: 'text'; text: string } | { $case: 'data'; data: Uint8Array };
}

/** An event as a durable subscription delivers it. */
export interface DeliveredEvent extends EventPayload {
  /** Its sequence in the events stream: what the subscriber acknowledges. */
  sequence: number;
  /** Delivered before and not acknowledged in time. */
  redelivered: boolean;
}

export interface DurableSubscription {
  events: AsyncIterable<DeliveredEvent>;
  /** Acknowledges a delivered event (once the server has recorded it); a sequence not waiting is a no-op. */
  ack(sequence: number): Promise<void>;
}

export interface EventBus {
  readonly kind: 'embedded' | 'nats';
  /** Resolves once the event is sent, or stored (with its sequence) when events are kept. */
  publish(event: EventPayload): Promise<number | undefined>;
  /**
   * Resolves once the subscription is in place (events published from then on are delivered);
   * iterate `events` until `signal` aborts or the subscription is ended.
   */
  subscribe(pattern: string, signal: AbortSignal): Promise<AsyncIterable<EventPayload>>;
  /** Absent: this bus keeps no events (durable subscriptions are refused). */
  subscribeDurable?(pattern: string, start: DurableStart, signal: AbortSignal): Promise<DurableSubscription>;
  close(): Promise<void>;
}

/** Does `key` fall under a watch of `watched` (a key, or a prefix)? */
export function watchCovers(watched: string, prefix: boolean, key: string): boolean {
  return prefix ? key.startsWith(watched) : key === watched;
}

/** A compare-and-set whose key is not at the expected revision (0 = absent), in both engines' words. */
export function revisionMismatch(key: string, expected: number, actual: number): BackplaneError {
  return BackplaneError.incorrectState(
    expected === 0
      ? `key ${key} exists (revision ${actual})`
      : `key ${key} is at revision ${actual || 'absent'}, not ${expected}`,
    // the revision now as a field a client can read, not only in the message
    { reason: 'REVISION_MISMATCH', metadata: { 'backplane-current-revision': String(actual) } },
  );
}

/** What one subscriber or watcher may have waiting, in bytes (values and events are up to 1 MiB each). */
export const QUEUED_BYTES_MAX = 64 * 1024 * 1024;

/** The byte budget of an event subscriber's queue (a string counts two bytes a character, as in memory). */
export const EVENT_BYTES: QueueBytes<EventPayload> = {
  max: QUEUED_BYTES_MAX,
  sizeOf: (e) =>
    64 +
    e.topic.length * 2 +
    (e.payload.$case === 'text' ? e.payload.text.length * 2 : e.payload.data.length),
};

/** The byte budget of a watcher's queue. */
export const CHANGE_BYTES: QueueBytes<Change> = {
  max: QUEUED_BYTES_MAX,
  sizeOf: (c) => 64 + c.key.length * 2 + (c.value?.length ?? 0),
};

/** The same for queues of watch items. */
export const WATCH_ITEM_BYTES: QueueBytes<WatchItem> = {
  max: QUEUED_BYTES_MAX,
  sizeOf: (i) => ('change' in i ? CHANGE_BYTES.sizeOf(i.change) : 16),
};
