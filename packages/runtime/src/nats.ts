import { BackplaneError } from '@backplane/client-core';
import { status } from '@grpc/grpc-js';
import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import type { Logger } from './logger';
import type { TlsFiles } from './tls';

/**
 * How a service reconnects to NATS: for as long as it runs (nats.js stops after 10 attempts, 2 s apart,
 * by default, and the connection is then closed for good), one attempt per server every half second plus
 * up to a quarter second of jitter (so a cluster's clients do not all come back in the same instant).
 */
export const NATS_RECONNECT = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 500,
  reconnectJitter: 250,
  reconnectJitterTLS: 500,
} as const;

export interface NatsConnectOptions {
  /** NATS server URLs, comma-separated. */
  servers: string;
  /** The connection's name as the servers show it (`nats server report connections`). */
  name: string;
  tls?: TlsFiles | undefined;
  log?: Logger | undefined;
}

/**
 * Connects a service to NATS with unlimited reconnects and logs every disconnect and reconnect.
 * Fails if no server answers at start (a misconfigured URL should stop the service, not hang it).
 */
export async function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.servers.split(',').map((s) => s.trim()),
    name: options.name,
    tls: natsTls(options.tls),
    ...NATS_RECONNECT,
    // nats.js otherwise builds two Error objects (stack traces) per request in case it times out: 18% of
    // a node's CPU under gets. Our errors carry their own context (the call that failed)
    noAsyncTraces: true,
  });
  const log = options.log;
  if (log) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') log.warn({ server: s.server }, 'NATS connection lost: reconnecting');
        else if (s.type === 'reconnect') log.info({ server: s.server }, 'NATS connection back');
        else if (s.type === 'error') log.warn({ err: s.error }, 'NATS error');
      }
    })();
  }
  return nc;
}

/** What a node can do with its NATS connection. */
export interface NatsState {
  /** The connection is up (false from a disconnect until the reconnect, and for good once closed). */
  connected: boolean;
  /** Connected, and JetStream has answered since (the readiness probe; without one, = connected). */
  ready: boolean;
}

/**
 * A NATS connection's state as its status events tell it. Core NATS (publish, subscribe) works as soon as
 * the connection is back; JetStream may need longer (a cluster that lost its meta leader elects another,
 * 4 to 9 s), so `ready` waits for the readiness probe after every reconnect. Engines call `ensure()` or
 * `ensureReady()` first, so a call made meanwhile answers UNAVAILABLE at once (the client then tries another
 * node) instead of waiting for a request timeout, and end their long streams when the connection is lost.
 */
export class NatsLink {
  private state: NatsState;
  private generation = 0;
  private readonly listeners = new Set<(state: NatsState) => void>();
  private readonly statuses: AsyncIterable<Status> & { stop?(): void };
  private stopped = false;

  /**
   * `ready`, when given, is asked after every reconnect until it resolves (see `jetStreamReady`).
   */
  constructor(
    nc: NatsConnection,
    private readonly options: { ready?: () => Promise<unknown>; retryMs?: number } = {},
  ) {
    const up = !nc.isClosed();
    this.state = { connected: up, ready: up };
    const statuses = nc.status() as AsyncIterable<Status> & { stop?(): void };
    this.statuses = statuses;
    void (async () => {
      for await (const s of statuses) {
        if (s.type === 'disconnect' || s.type === 'close') this.set({ connected: false, ready: false });
        else if (s.type === 'reconnect') void this.reconnected();
      }
    })();
    void nc.closed().then(() => {
      this.stopped = true;
      this.set({ connected: false, ready: false });
    });
  }

  get connected(): boolean {
    return this.state.connected;
  }

  get ready(): boolean {
    return this.state.ready;
  }

  /** Calls `listener(state)` on every change; returns a function that stops calling it. */
  onChange(listener: (state: NatsState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Throws UNAVAILABLE (reason NATS_DISCONNECTED) while the connection is lost. */
  ensure(): void {
    if (!this.state.connected)
      throw BackplaneError.unavailable(
        'this node has lost its NATS connection and is reconnecting: try another node or try again',
        { reason: 'NATS_DISCONNECTED' },
      );
  }

  /** Throws UNAVAILABLE while the connection is lost (NATS_DISCONNECTED) or JetStream has not answered since. */
  ensureReady(): void {
    this.ensure();
    if (!this.state.ready)
      throw BackplaneError.unavailable(
        "this node's NATS connection is back, but JetStream has not answered yet (a cluster electing its leaders): try another node or try again",
        { reason: 'JETSTREAM_NOT_READY' },
      );
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    this.statuses.stop?.();
    this.listeners.clear();
  }

  private async reconnected(): Promise<void> {
    const generation = ++this.generation;
    const ready = this.options.ready;
    this.set({ connected: true, ready: !ready });
    while (ready && !this.stopped && generation === this.generation) {
      try {
        await ready();
        if (!this.stopped && generation === this.generation) this.set({ connected: true, ready: true });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, this.options.retryMs ?? 250));
      }
    }
  }

  private set(next: NatsState): void {
    if (!next.connected) this.generation++;
    if (this.state.connected === next.connected && this.state.ready === next.ready) return;
    this.state = next;
    for (const l of [...this.listeners]) l(next);
  }
}

/**
 * Resolves once JetStream answers on this connection: its meta leader (the account info request; creating
 * consumers needs it), and, when `stream` is given, that stream's leader (its info request). After a whole
 * cluster restarted, both take a leader election (4 to 9 s on nats-server 2.9 and 2.10). Rejects after
 * `timeoutMs` per request, or with JetStream's own error.
 */
export async function jetStreamReady(
  nc: NatsConnection,
  options: { stream?: string; timeoutMs?: number } = {},
): Promise<void> {
  const ask = async (subject: string) => {
    const m = await nc.request(subject, '', { timeout: options.timeoutMs ?? 1000 });
    const body = m.json<{ error?: { code: number; description?: string } }>();
    if (body.error) throw new Error(`JetStream is not ready: ${body.error.description ?? body.error.code}`);
  };
  await ask('$JS.API.INFO');
  if (options.stream) await ask(`$JS.API.STREAM.INFO.${options.stream}`);
}

/**
 * Runs one JetStream set-up step (creating a stream, a bucket, a consumer) until it succeeds or `deadlineMs`
 * passes. Right after a cluster forms, and while several nodes create the same R3 stream at once, the meta
 * leader answers some requests late or not at all (a plain timeout) though a retry succeeds; the steps are
 * idempotent. A BackplaneError other than UNAVAILABLE (our own refusal) is not retried; the last error is
 * thrown at the deadline.
 */
export async function retryJetStream<T>(
  what: string,
  step: () => Promise<T>,
  options: { deadlineMs?: number; log?: Logger | undefined } = {},
): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 60_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      const refused = err instanceof BackplaneError && err.code !== status.UNAVAILABLE;
      if (refused || Date.now() > deadline) throw err;
      options.log?.info(
        { err: (err as Error).message, attempt, step: what },
        'JetStream not ready yet; retrying',
      );
      await new Promise((r) =>
        setTimeout(r, Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random())),
      );
    }
  }
}

/** nats.js TLS options from our TLS files; undefined (plaintext, unless the URL says tls://) when none. */
export function natsTls(tls: TlsFiles | undefined) {
  if (!tls?.ca && !tls?.cert && !tls?.key) return undefined;
  if (!tls.cert !== !tls.key) throw new Error('a NATS client certificate needs both a certificate and a key');
  return { caFile: tls.ca, certFile: tls.cert, keyFile: tls.key };
}

/**
 * Closes a service's NATS connection: drains it (what was published goes out, subscriptions end) when it
 * is up, but never waits longer than `timeoutMs` (a drain while reconnecting waits for the servers).
 */
export async function closeNats(nc: NatsConnection, timeoutMs = 2000): Promise<void> {
  if (nc.isClosed()) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    nc.drain().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close();
}
