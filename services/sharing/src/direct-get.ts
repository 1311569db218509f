import { TurnBatch } from '@backplane/runtime';
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

/** A stream's message: what a direct get returns, and what the properties engine reads from a watch. */
export interface StreamMsg {
  subject: string;
  seq: number;
  headers?: MsgHdrs;
  data: Uint8Array;
}

interface Waiting {
  resolve(m: StreamMsg | null): void;
  reject(err: Error): void;
  until: number;
}

const EMPTY = new Uint8Array(0);

/**
 * JetStream direct gets of a subject's last message (what NATS KV's get does), many in flight over one
 * reply subscription. nats.js's request() builds an Error with a stack trace for every request, answered
 * or not (it "cancels" each one after its answer), which was 8% of a sharing node's CPU under gets; this
 * sends the same request — `$JS.API.DIRECT.GET.<stream>.<subject>` with an empty body, answered by any
 * replica — with a reply subject of its own.
 */
export class DirectGetter {
  private readonly inbox = `${createInbox()}.`;
  private readonly sub: Subscription;
  private readonly waiting = new Map<number, Waiting>();
  private readonly sweeper: NodeJS.Timeout;
  private next = 1;
  /**
   * Requests are sent together at the end of each event-loop turn. Each gRPC call arrives in a callback
   * of its own, so a request published at once went out in a socket write of its own (nats.js flushes at
   * the end of the current task): the node made one write per get, and nats-server, reading one request
   * at a time, spent 3× the CPU per get it spends on a client that batches (measured). One write per turn
   * brings the answers back together too, and with them the gRPC answers.
   */
  private readonly queued = new TurnBatch<{ id: number; subject: string }>((requests) => this.send(requests));

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5000,
    private readonly apiPrefix = '$JS.API',
  ) {
    this.sub = nc.subscribe(`${this.inbox}*`, {
      callback: (err, msg) => (err ? this.failAll(err) : this.answer(msg)),
    });
    void this.sub.closed.then(() => this.failAll(new Error('the reply subscription ended')));
    this.sweeper = setInterval(() => this.sweep(), Math.min(250, this.timeoutMs));
    this.sweeper.unref();
  }

  /** The last message on `subject` in `stream`, or null when there is none. */
  last(stream: string, subject: string): Promise<StreamMsg | null> {
    return new Promise<StreamMsg | null>((resolve, reject) => {
      const id = this.next++;
      this.waiting.set(id, { resolve, reject, until: Date.now() + this.timeoutMs });
      this.queued.push({ id, subject: `${this.apiPrefix}.DIRECT.GET.${stream}.${subject}` });
    });
  }

  private send(requests: Array<{ id: number; subject: string }>): void {
    for (const { id, subject } of requests) {
      try {
        this.nc.publish(subject, EMPTY, { reply: this.inbox + id });
      } catch (err) {
        const w = this.waiting.get(id);
        this.waiting.delete(id);
        w?.reject(err as Error);
      }
    }
  }

  close(): void {
    this.queued.clear();
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    this.failAll(new Error('closed'));
  }

  private answer(msg: Msg): void {
    const id = Number(msg.subject.slice(this.inbox.length));
    const w = this.waiting.get(id);
    if (!w) return; // timed out already
    this.waiting.delete(id);
    const h = msg.headers;
    const code = h?.code ?? 0;
    if (code === 404) {
      w.resolve(null);
      return;
    }
    if (code >= 300 || !h) {
      // 503: no JetStream responders (the stream or the server is gone); 408 and others: refused
      w.reject(new Error(`direct get failed: ${code} ${h?.description ?? 'no headers'}`));
      return;
    }
    w.resolve({
      subject: h.get('Nats-Subject'),
      seq: Number(h.get('Nats-Sequence')),
      headers: h,
      data: msg.data,
    });
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, w] of this.waiting) {
      if (w.until > now) continue;
      this.waiting.delete(id);
      w.reject(new Error(`direct get timed out after ${this.timeoutMs} ms`));
    }
  }

  private failAll(err: Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.reject(err);
  }
}
