import { setMaxListeners } from 'node:events';
import {
  BackplaneError,
  type CallOptions,
  CallPipeline,
  type PipelinedMethod,
  pipelinedUnary,
  RECONNECT_OPTIONS,
  type UnaryMethod,
  unary,
} from '@backplane/client-core';
import { NodesRequest, SharingServiceClient } from '@backplane/proto/sharing';
import { type ChannelCredentials, credentials as grpcCredentials, status } from '@grpc/grpc-js';

export const DEFAULT_PORT = 8400;

export interface ConnectionOptions {
  credentials?: ChannelCredentials;
  /** Sent on every call (e.g. a bearer token). */
  metadata?: CallOptions['metadata'];
  /**
   * Send get, put, remove, compare-and-set, list and publish as messages of one stream to the node
   * (default true) instead of one HTTP/2 stream each: several times the calls per second when many are
   * in flight. Each call keeps its own deadline, cancellation, status and failover.
   */
  pipeline?: boolean;
}

/** The first wait before a long call (watch, subscription) tries again after no node answered. */
export const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2000;

/** Waits `ms` (less if the signal aborts) and returns the next, longer wait. */
export async function retryPause(ms: number, signal?: AbortSignal): Promise<number> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
  return Math.min(ms * 2, RETRY_MAX_MS);
}

/**
 * The seed's bootstrap URL: `boot@host[:port]`, `host[:port]`, or several comma-separated; the port
 * defaults to 8400. Returns host:port addresses.
 */
export function parseBootstrapUrl(url: string): string[] {
  const list = url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const at = s.replace(/^[a-z+]+:\/\//, '').replace(/^boot@/, '');
      const hostPort = at.replace(/\/.*$/, '');
      if (!hostPort) throw BackplaneError.badParameter(`bootstrap URL ${JSON.stringify(url)} names no host`);
      return /:\d+$/.test(hostPort) || /^\[.*\]:\d+$/.test(hostPort)
        ? hostPort
        : `${hostPort}:${DEFAULT_PORT}`;
    });
  if (list.length === 0) throw BackplaneError.badParameter('an empty bootstrap URL');
  return list;
}

/**
 * A connection to a sharing ring: starts at the bootstrap addresses, learns every node (Nodes), and
 * when the node in use goes away moves to another one and repeats the call, so the application sees
 * at most a slower call. One per URL per process (SharingFactory keeps them), as in the seed.
 */
export class SharingConnection {
  private nodes: string[];
  private index = 0;
  private client: SharingServiceClient;
  /** The call pipeline to the node in use (none when the option is off). */
  private pipeline: CallPipeline | undefined;
  private readonly credentials: ChannelCredentials;
  private closed = false;
  private readonly closing = new AbortController();

  constructor(
    readonly url: string,
    private readonly options: ConnectionOptions = {},
  ) {
    setMaxListeners(0, this.closing.signal);
    this.nodes = parseBootstrapUrl(url);
    this.credentials = options.credentials ?? grpcCredentials.createInsecure();
    this.client = this.open(this.nodes[0] as string);
  }

  private open(address: string): SharingServiceClient {
    const client = new SharingServiceClient(address, this.credentials, RECONNECT_OPTIONS);
    this.pipeline = this.options.pipeline === false ? undefined : new CallPipeline(client);
    return client;
  }

  /**
   * A unary call to the node in use (through its call pipeline unless that is off), with failover:
   * `pick` names the same method on the grpc-js client.
   */
  unary<Req, Res>(
    method: PipelinedMethod<Req, Res>,
    pick: (stub: SharingServiceClient) => UnaryMethod<Req, Res>,
    request: Req,
    opts?: CallOptions,
    conditional = false,
  ): Promise<Res> {
    const idempotent = (request as { requestId?: string }).requestId !== undefined;
    return this.withFailover(
      (stub) => {
        const pipeline = stub === this.client ? this.pipeline : undefined;
        return pipelinedUnary(pipeline, method, pick(stub).bind(stub), request, this.callOptions(opts));
      },
      conditional,
      idempotent && (request as { requestId: string }).requestId !== '',
    );
  }

  /** The node in use. */
  get address(): string {
    return this.nodes[this.index] as string;
  }

  /** The ring as last learnt. */
  get knownNodes(): readonly string[] {
    return this.nodes;
  }

  get stub(): SharingServiceClient {
    if (this.closed) throw BackplaneError.incorrectState('the sharing connection is closed');
    return this.client;
  }

  callOptions(opts: CallOptions = {}): CallOptions {
    return this.options.metadata && !opts.metadata ? { ...opts, metadata: this.options.metadata } : opts;
  }

  /** Asks the ring for its nodes and keeps them (the node in use stays first choice). */
  async refresh(opts: CallOptions = {}): Promise<string[]> {
    const res = await unary(
      this.stub.nodes.bind(this.stub),
      NodesRequest.fromPartial({}),
      this.callOptions(opts),
    );
    const learnt = res.nodes.map((n) => n.address).filter(Boolean);
    if (learnt.length > 0) {
      const current = this.address;
      this.nodes = [...new Set([current, ...learnt])];
      this.index = 0;
    }
    return this.nodes;
  }

  /** Moves to the next node after `failed` (unless someone moved already). */
  failover(failed: SharingServiceClient): void {
    if (failed !== this.client || this.nodes.length < 2) return;
    this.pipeline?.close();
    this.client.close();
    this.index = (this.index + 1) % this.nodes.length;
    this.client = this.open(this.address);
  }

  /**
   * Runs `fn` against the node in use; on UNAVAILABLE moves to the next node and runs it again, once
   * per known node. Calls are retried only when they failed to reach a node or the node went away.
   *
   * Writes carry a request id (`idempotent`): every try of one write is one write at the nodes (within two
   * minutes), applied once, and each try answers with its result, so a write is retried whatever
   * happened to the try before. A `conditional` write (compare-and-set, a remove at a revision, a commit
   * with reads) without one is run again only when it never reached a node (after one that may have
   * applied, a second try would report a conflict with itself); it fails instead with UNAVAILABLE,
   * reason OUTCOME_UNKNOWN. So does a conditional write whose every try failed after reaching a node.
   */
  async withFailover<T>(
    fn: (stub: SharingServiceClient) => Promise<T>,
    conditional = false,
    idempotent = false,
  ): Promise<T> {
    let lastErr: unknown;
    let reached = false;
    for (let attempt = 0; attempt < Math.max(2, this.nodes.length + 1); attempt++) {
      const stub = this.stub;
      try {
        return await fn(stub);
      } catch (err) {
        lastErr = err;
        if (!isUnavailable(err)) throw err;
        this.failover(stub);
        if (!neverSent(err)) reached = true;
        if (conditional && reached && !idempotent) break;
      }
    }
    if (conditional && reached)
      throw BackplaneError.unavailable(
        `the node went away during a conditional write, which may or may not have applied: ${BackplaneError.from(lastErr).message}`,
        { reason: 'OUTCOME_UNKNOWN', cause: lastErr },
      );
    throw lastErr;
  }

  /**
   * Aborted when the connection closes: long calls (subscriptions, watches) end with it. Each of them
   * listens, and thousands on one connection are normal, so there is no listener cap.
   */
  get closeSignal(): AbortSignal {
    return this.closing.signal;
  }

  close(): void {
    this.closed = true;
    this.closing.abort();
    this.pipeline?.close();
    this.client.close();
  }
}

export function isUnavailable(err: unknown): boolean {
  return (err as { code?: number })?.code === status.UNAVAILABLE;
}

/** grpc-js could not connect to the node: the call never left this process. */
function neverSent(err: unknown): boolean {
  return String(
    (err as { details?: string; message?: string })?.details ?? (err as Error)?.message ?? '',
  ).includes('No connection established');
}
