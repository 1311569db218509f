import type { AttachResponse } from '@backplane/proto/ds';
import type { ByteCounters, RelayStream } from './relay-stream';

/** A client of one service as the coordinator sees it: its streams and the node they are at. */
export interface ClientRecord {
  readonly key: string;
  readonly name: string;
  readonly url: string;
  readonly streams: Set<RelayStream>;
  /** The node its streams are at (undefined: none yet, or waiting for one). */
  node: NodeSession | undefined;
  /** Set while a handoff or re-homing moves it: new connections wait for it. */
  moving: Promise<void> | undefined;
}

const LATENCY_SAMPLES = 1024;

/** An attached node: one ds_service of one service name, and its control stream. */
export class NodeSession {
  readonly clients = new Set<ClientRecord>();
  readonly counters: ByteCounters & { handoffsOut: number; handoffsIn: number } = {
    toNode: 0,
    fromNode: 0,
    handoffsOut: 0,
    handoffsIn: 0,
  };
  readonly attachedAt = Date.now();
  /** Detached (close()) or failed: no new clients, no handoffs to it. */
  closed = false;
  detached = false;
  /** Drains in progress: new clients go to other nodes while there are any. */
  draining = 0;
  private outbox: Promise<void> = Promise.resolve();
  private readonly latencies: number[] = [];
  private latencyNext = 0;

  constructor(
    readonly url: string,
    readonly name: string,
    readonly node: string,
    readonly secret: string,
    private readonly sendRaw: (message: AttachResponse) => Promise<void>,
  ) {}

  /**
   * Sends on the control stream, in order, one at a time (a burst of new connections must not pile up a
   * listener per message on a full stream); a failed send means the session is ending.
   */
  send(message: AttachResponse): void {
    if (this.closed) return;
    this.outbox = this.outbox.then(() => (this.closed ? undefined : this.sendRaw(message))).catch(() => {});
  }

  recordHandoff(ms: number): void {
    if (this.latencies.length < LATENCY_SAMPLES) this.latencies.push(ms);
    else this.latencies[this.latencyNext] = ms;
    this.latencyNext = (this.latencyNext + 1) % LATENCY_SAMPLES;
  }

  /** p50/p99 of the last 1,024 handoffs from this node, in ms. */
  handoffLatency(): { p50: number; p99: number } {
    if (this.latencies.length === 0) return { p50: 0, p99: 0 };
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
    return { p50: at(0.5), p99: at(0.99) };
  }

  streamCount(): number {
    let n = 0;
    for (const c of this.clients) n += c.streams.size;
    return n;
  }
}
