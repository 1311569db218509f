import { EventEmitter } from 'node:events';
import { connect, isIP, type NetConnectOpts } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { BackplaneError, unary } from '@backplane/client-core';
import {
  type AttachRequest,
  type AttachResponse,
  CoordinatorServiceClient,
  HandoffReason,
  type HandoffRequest,
  type HandoffResponse,
  type IncomingHandoff,
  type StreamGrant,
} from '@backplane/proto/ds';
import {
  type ChannelCredentials,
  type ClientDuplexStream,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { arrivalReason, type ClientOwner, DsClient } from './ds-client';
import { DsStream, type StreamClosedKind } from './ds-stream';
import { Mailbox } from './mailbox';
import type { HandoffPolicy } from './policy';

export const DEFAULT_COORDINATOR = '127.0.0.1:7400';
/** Unread bytes go to the coordinator in messages of at most this size. */
const UNREAD_CHUNK = 1024 * 1024;
/** Buffering of a stream's data connection and of its Duplex (Node's 16 KiB default throttles bulk reads). */
const STREAM_HIGH_WATER_MARK = 256 * 1024;
/** How long a handoff waits for a stream the coordinator announced but this node has not opened yet. */
const STREAM_APPEAR_MS = 5000;
/** Closed stream ids a client's state remembers. */
const MAX_CLOSED_IDS = 1024;

export interface DsServiceOptions {
  /** host:port of the coordinator's control plane; default $BACKPLANE_DS_COORDINATOR or 127.0.0.1:7400. */
  coordinator?: string;
  /** This node's id (one ds_service per name per node); default $BACKPLANE_DS_NODE or the host name. */
  node?: string;
  credentials?: ChannelCredentials;
  /** Sent on every call (e.g. a bearer token). */
  metadata?: Metadata;
  /**
   * TLS for the data connections when the coordinator's data listener speaks TLS (it says so when the node
   * attaches): the CA that signed its certificate, and a client certificate and key if it asks for one.
   * Default: the system's CAs.
   */
  dataTls?: ConnectionOptions;
  /** Attach again after the coordinator restarts (default true). */
  reattach?: boolean;
  /** How long attaching may take before the constructor's NoSuccess (default 5000 ms). */
  connectTimeoutMs?: number;
}

interface ClientState {
  url: string;
  epoch: number;
  streams: Map<string, DsStream>;
  moving: boolean;
  appeared: Map<string, (stream: DsStream) => void>;
  /** New streams that arrived while a handoff was starting: served if it does not start. */
  held: DsStream[];
  /** Streams the application closed here (the coordinator may still list them in a handoff). */
  closedIds: Set<string>;
}

/**
 * The seed's ds_service, for a server node: attaches under a service name at the coordinator, serves the
 * streams of new clients, hands clients to other nodes and receives clients handed to it.
 *
 * Timeouts are in milliseconds (the seed's are seconds); a negative timeout waits forever. Errors are
 * BackplaneErrors with the seed's names as gRPC codes: NoSuccess = UNAVAILABLE, DoesNotExist = NOT_FOUND,
 * AlreadyExists = ALREADY_EXISTS, IncorrectState = FAILED_PRECONDITION, BadParameter = INVALID_ARGUMENT,
 * Timeout = DEADLINE_EXCEEDED.
 *
 * Events: 'attached' (node URL) after every (re)attach, 'detached' (error) when the coordinator is lost,
 * 'handedOff' (client URL, target URL), 'releaseFailed' (client URL, error) when a drain could not move
 * a client.
 */
export class DsService extends EventEmitter implements ClientOwner {
  /** Resolves once attached; rejects with the constructor's error (NoSuccess, DoesNotExist, AlreadyExists). */
  readonly ready: Promise<void>;
  readonly name: string;
  readonly node: string;
  private readonly stub: CoordinatorServiceClient;
  private readonly metadata: Metadata;
  private call: ClientDuplexStream<AttachRequest, AttachResponse> | undefined;
  private secret = '';
  private dataHost = '';
  private dataPort = 0;
  private dataTls = false;
  private nodeUrl = '';
  private clientAddress = '';
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private epochs = 0;
  private readonly clients = new Map<string, ClientState>();
  private readonly owners = new Map<Duplex, ClientState>();
  private readonly served = new Mailbox<DsStream>('client stream');
  private readonly handoffs = new Mailbox<DsClient>('handoff');

  constructor(
    name: string,
    private readonly policy: HandoffPolicy | null = null,
    private readonly options: DsServiceOptions = {},
  ) {
    super();
    this.name = name;
    this.node = options.node ?? process.env.BACKPLANE_DS_NODE ?? hostname();
    this.metadata = options.metadata ?? new Metadata();
    this.stub = new CoordinatorServiceClient(
      options.coordinator ?? process.env.BACKPLANE_DS_COORDINATOR ?? DEFAULT_COORDINATOR,
      options.credentials ?? grpcCredentials.createInsecure(),
      { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    );
    this.ready = this.attach();
    this.ready.catch(() => {});
  }

  /** Creates and attaches a service; rejects as the seed's constructor throws. */
  static async create(name: string, policy: HandoffPolicy | null = null, options: DsServiceOptions = {}) {
    const ds = new DsService(name, policy, options);
    try {
      await ds.ready;
    } catch (err) {
      await ds.close(false);
      throw err;
    }
    return ds;
  }

  /** This node's URL, ds://<node>/<name> (once attached). */
  get url(): string {
    return this.nodeUrl;
  }

  /** host:port the service's clients dial (the coordinator's listener for this name; once attached). */
  get serviceAddress(): string {
    return this.clientAddress;
  }

  // ---- the session -------------------------------------------------------------------------------

  private attach(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call = this.stub.attach(this.metadata);
      this.call = call;
      let attached = false;
      const timeoutMs = this.options.connectTimeoutMs ?? 5000;
      const timer = setTimeout(() => {
        if (attached) return;
        call.cancel();
        reject(
          BackplaneError.unavailable(`no coordinator answered at ${this.stub.getChannel().getTarget()}`),
        );
      }, timeoutMs);
      call.on('data', (message: AttachResponse) => {
        if (message.kind?.$case === 'attached' && !attached) {
          attached = true;
          clearTimeout(timer);
          const a = message.kind.attached;
          this.secret = a.session;
          this.nodeUrl = a.nodeUrl;
          this.clientAddress = a.serviceAddress;
          const colon = a.dataAddress.lastIndexOf(':');
          this.dataHost = a.dataAddress.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
          this.dataPort = Number(a.dataAddress.slice(colon + 1));
          this.dataTls = a.dataTls;
          resolve();
          this.emit('attached', this.nodeUrl);
          return;
        }
        this.onMessage(message);
      });
      const lost = (err?: Error) => {
        if (this.call !== call) return;
        this.call = undefined;
        if (!attached) {
          clearTimeout(timer);
          reject(
            err ? BackplaneError.from(err) : BackplaneError.unavailable('the coordinator ended the session'),
          );
          return;
        }
        this.sessionLost(err);
      };
      call.on('error', (err: ServiceError) => lost(err));
      call.on('end', () => lost());
      call.write({ kind: { $case: 'attach', attach: { name: this.name, node: this.node } } });
    });
  }

  /** The coordinator went away: every stream is gone with it; attach again unless closed. */
  private sessionLost(err?: Error): void {
    if (this.closed) return;
    this.secret = '';
    for (const st of this.clients.values()) for (const s of st.streams.values()) s.destroy();
    this.clients.clear();
    this.emit('detached', err ?? BackplaneError.unavailable('the coordinator ended the session'));
    if (this.options.reattach === false) return;
    // not unref'd: an open ds_service keeps its process alive while it waits for the coordinator
    const retry = (delay: number) => {
      if (this.closed) return;
      this.retryTimer = setTimeout(() => {
        if (this.closed) return;
        this.attach().catch(() => retry(Math.min(delay * 2, 2000)));
      }, delay);
    };
    retry(100);
  }

  private onMessage(message: AttachResponse): void {
    const kind = message.kind;
    if (!kind) return;
    if (kind.$case === 'newStream') {
      const { clientUrl, stream } = kind.newStream;
      if (!stream) return;
      const st = this.stateOf(clientUrl);
      const ds = this.openStream(stream, st);
      if (!st.moving) this.served.put(ds);
      else st.held.push(ds);
    } else if (kind.$case === 'incomingHandoff') {
      this.received(kind.incomingHandoff);
    } else if (kind.$case === 'release') {
      const { clientUrl, targetUrl } = kind.release;
      const st = this.clients.get(clientUrl);
      if (!st) return;
      const client = new DsClient(this, st.url, st.epoch, [...st.streams.values()], null);
      this.move(targetUrl, client, -1, HandoffReason.HANDOFF_REASON_DRAIN).catch((err: unknown) =>
        this.emit('releaseFailed', clientUrl, err),
      );
    }
  }

  private stateOf(url: string): ClientState {
    let st = this.clients.get(url);
    if (!st) {
      st = {
        url,
        epoch: ++this.epochs,
        streams: new Map(),
        moving: false,
        appeared: new Map(),
        held: [],
        closedIds: new Set(),
      };
      this.clients.set(url, st);
    }
    return st;
  }

  private openStream(grant: StreamGrant, st: ClientState): DsStream {
    // highWaterMark is a Duplex option net.Socket honours (its typings omit it)
    const options = {
      host: this.dataHost,
      port: this.dataPort,
      noDelay: true,
      allowHalfOpen: true,
      highWaterMark: STREAM_HIGH_WATER_MARK,
    } as NetConnectOpts & { host: string; port: number };
    const socket = this.dataTls
      ? tlsConnect({
          ...options,
          // SNI carries host names only
          servername: isIP(this.dataHost) ? undefined : this.dataHost,
          ...this.options.dataTls,
        })
      : connect(options);
    socket.write(grant.token);
    const ds = new DsStream(
      grant.streamId,
      st.url,
      socket,
      (s, kind) => this.streamClosed(s, kind),
      STREAM_HIGH_WATER_MARK,
    );
    if (grant.writeClosed) ds.end();
    st.streams.set(ds.id, ds);
    this.owners.set(ds, st);
    ds.once('close', () => {
      this.served.remove(ds);
      // the state holding it now (a client handed back here takes over the streams it still had)
      const owner = this.owners.get(ds) ?? st;
      this.owners.delete(ds);
      if (owner.streams.get(ds.id) === ds) {
        owner.streams.delete(ds.id);
        owner.closedIds.add(ds.id);
        // only recent ones matter (a handoff listing a stream the coordinator has not seen close yet)
        if (owner.closedIds.size > MAX_CLOSED_IDS) {
          const oldest = owner.closedIds.values().next().value as string;
          owner.closedIds.delete(oldest);
        }
      }
      if (owner.streams.size === 0 && !owner.moving && this.clients.get(owner.url) === owner)
        this.clients.delete(owner.url);
    });
    st.appeared.get(ds.id)?.(ds);
    st.appeared.delete(ds.id);
    return ds;
  }

  private received(h: IncomingHandoff): void {
    const previous = this.clients.get(h.clientUrl);
    if (previous) this.clients.delete(h.clientUrl);
    const st = this.stateOf(h.clientUrl);
    if (previous) {
      for (const [id, s] of previous.streams) {
        st.streams.set(id, s);
        this.owners.set(s, st);
      }
    }
    const streams = h.streams.map((g) => this.openStream(g, st));
    const client = new DsClient(this, st.url, st.epoch, streams, h.message ?? null, {
      reason: arrivalReason(h.reason),
      from: h.fromNodeUrl,
    });
    this.handoffs.put(client);
  }

  private streamClosed(stream: DsStream, kind: StreamClosedKind): void {
    this.call?.write({
      kind: { $case: 'streamClosed', streamClosed: { streamId: stream.id, writeOnly: kind === 'write' } },
    });
  }

  /** @internal ClientOwner */
  epochOf(url: string): number | undefined {
    const st = this.clients.get(url);
    return st && !st.moving ? st.epoch : undefined;
  }

  private checkOpen(): void {
    if (this.closed) throw BackplaneError.incorrectState('the ds_service is closed');
  }

  private async session(): Promise<string> {
    this.checkOpen();
    await this.ready;
    if (!this.secret) throw BackplaneError.unavailable('the coordinator cannot be contacted (re-attaching)');
    return this.secret;
  }

  // ---- the seed's API ----------------------------------------------------------------------------

  /**
   * The next stream of a new client connection. While the service re-attaches after losing the
   * coordinator it waits (streams come again once it is back) rather than failing.
   */
  async serve(timeoutMs = -1): Promise<Duplex> {
    this.checkOpen();
    const started = Date.now();
    await this.attachedWithin(timeoutMs);
    // lost the coordinator and told not to attach again: nothing will ever come
    if (!this.secret && this.options.reattach === false)
      throw BackplaneError.unavailable('the coordinator session ended (reattach is off)');
    return this.served.take(remaining(timeoutMs, started));
  }

  /** Waits for the first attach, at most `timeoutMs` (< 0: as long as it takes); its failure is thrown. */
  private async attachedWithin(timeoutMs: number): Promise<void> {
    if (timeoutMs < 0) return this.ready;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(BackplaneError.of('TIMEOUT', `not attached to the coordinator within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.ready, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The client a stream belongs to (a new object each call). */
  getClient(stream: Duplex): DsClient {
    this.checkOpen();
    const st = this.owners.get(stream);
    if (!st || this.clients.get(st.url) !== st) {
      throw BackplaneError.notFound('no client is associated with this stream here', {
        reason: 'CLIENT_NOT_FOUND',
      });
    }
    if (stream.destroyed || stream.readableEnded)
      throw BackplaneError.badParameter('the stream is not connected');
    return new DsClient(this, st.url, st.epoch, [...st.streams.values()], null);
  }

  /** Every client at this node now. */
  getAllClients(): DsClient[] {
    this.checkOpen();
    return [...this.clients.values()]
      .filter((st) => !st.moving)
      .map((st) => new DsClient(this, st.url, st.epoch, [...st.streams.values()], null));
  }

  /** Every stream of every client at this node now (a shallow copy). */
  getAllStreams(): Duplex[] {
    this.checkOpen();
    return [...this.clients.values()].filter((st) => !st.moving).flatMap((st) => [...st.streams.values()]);
  }

  /** The other nodes attached under this name, as ds:// URLs (possibly none). */
  async getAllTargets(): Promise<string[]> {
    return (await this.targets()).map((t) => t.nodeUrl);
  }

  private async targets(timeoutMs = -1) {
    const session = await this.session();
    const res = await unary(
      this.stub.listTargets.bind(this.stub),
      { session },
      { metadata: this.metadata, timeoutMs: timeoutMs >= 0 ? Math.max(1, timeoutMs) : undefined },
    );
    return res.targets;
  }

  /** Hands the client (all its streams here) to the node its policy picks; returns that node's URL. */
  async handoff(client: DsClient, timeoutMs = -1): Promise<string> {
    this.checkOpen();
    this.handled(client);
    if (!this.policy) throw BackplaneError.incorrectState('this ds_service has no handoff policy');
    const startedAt = Date.now();
    const targets = await this.targets(timeoutMs);
    const target = await this.policy.getTarget(
      client,
      targets.map((t) => t.nodeUrl),
      { clients: new Map(targets.map((t) => [t.nodeUrl, t.clients])) },
    );
    return this.move(target, client, remaining(timeoutMs, startedAt));
  }

  /** Hands the client (all its streams here) to the node `target` (ds://<node>/<name>). */
  async handoffTo(target: string, client: DsClient, timeoutMs = -1): Promise<void> {
    await this.move(target, client, timeoutMs);
  }

  /** The state of a client handled here, for handoff: DoesNotExist when it is not (any more). */
  private handled(client: DsClient): ClientState {
    const st = this.clients.get(client.key);
    if (!st || st.epoch !== client.stay || st.moving) {
      throw BackplaneError.notFound(
        `client ${client.key} is not handled by this ds_service (handed off or gone)`,
        {
          reason: 'CLIENT_NOT_FOUND',
        },
      );
    }
    client.check();
    return st;
  }

  /**
   * One handoff. The timeout bounds the whole handoff (the coordinator is told it too) except the start
   * and the sending of unread bytes, which are never cut short: once the coordinator has stopped the
   * client's input here, giving up half-way would lose bytes. A stream not yet connected here when the
   * time is up goes to the target as it is (it has received nothing here).
   */
  private async move(
    target: string,
    client: DsClient,
    timeoutMs: number,
    reason = HandoffReason.HANDOFF_REASON_APPLICATION,
  ): Promise<string> {
    const session = await this.session();
    const st = this.handled(client);
    st.moving = true;
    const call = this.stub.handoff(this.metadata.clone());
    const responses = responsesOf(call);
    const deadline = timeoutMs >= 0 ? Date.now() + timeoutMs : undefined;
    const left = () => (deadline === undefined ? STREAM_APPEAR_MS : Math.max(0, deadline - Date.now()));
    let started = false;
    try {
      call.write({
        kind: {
          $case: 'start',
          // 0 = no bound at the coordinator either
          start: {
            session,
            clientUrl: st.url,
            targetUrl: target,
            reason,
            timeoutMs: deadline ? left() || 1 : 0,
          },
        },
      });
      const first = await responses.next(undefined, '');
      if (first.kind?.$case !== 'started') {
        throw BackplaneError.of('INTERNAL', 'the coordinator did not start the handoff');
      }
      started = true;
      st.held = []; // part of the handoff
      const writeClosedStreamIds: string[] = [];
      for (const id of first.kind.started.streamIds) {
        if (st.closedIds.has(id)) continue; // closed by the application: nothing to hand on
        const ds = st.streams.get(id) ?? (await appeared(st, id, Math.min(STREAM_APPEAR_MS, left())));
        if (!ds) continue;
        const { unread, writeClosed } = await ds.release();
        if (writeClosed) writeClosedStreamIds.push(id);
        for (const chunk of chunks(unread)) {
          if (!call.write({ kind: { $case: 'unread', unread: { streamId: id, data: chunk } } })) {
            await responses.drained();
          }
        }
      }
      const message = client.messageForHandoff();
      call.write({
        kind: { $case: 'finish', finish: { message: message ?? undefined, writeClosedStreamIds } },
      });
      call.end();
      const done = await responses.next(
        deadline,
        `the target did not take client ${st.url} within ${timeoutMs} ms (it has left this node)`,
      );
      if (done.kind?.$case !== 'completed') {
        throw BackplaneError.of('INTERNAL', 'the coordinator did not complete the handoff');
      }
      return done.kind.completed.targetUrl;
    } catch (err) {
      // once started, the call is left to finish: cancelling it could drop unread bytes still queued in it
      if (!started) {
        call.cancel();
        st.moving = false;
        // new streams that came meanwhile stay here: serve() hands them out
        for (const ds of st.held.splice(0)) if (!ds.destroyed) this.served.put(ds);
      }
      throw BackplaneError.from(err);
    } finally {
      if (started) {
        // the streams are released whatever happened after: the client is no longer here
        if (this.clients.get(st.url) === st) this.clients.delete(st.url);
        for (const s of st.streams.values()) this.owners.delete(s);
        this.emit('handedOff', st.url, target);
      }
    }
  }

  /** The next client handed to this node, with its message and live streams. */
  async receiveHandoff(timeoutMs = -1): Promise<DsClient> {
    await this.session();
    return this.handoffs.take(timeoutMs);
  }

  /**
   * Detaches: every stream of this node's clients is closed; with bindingReset (the default) their next
   * connections go to the contact node's default choice. Later calls fail with IncorrectState.
   */
  async close(bindingReset = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const closedError = BackplaneError.incorrectState('the ds_service is closed');
    this.served.fail(closedError);
    this.handoffs.fail(closedError);
    // the streams' output goes first: the coordinator relays each one up to its end before it closes it
    for (const st of this.clients.values())
      for (const s of st.streams.values()) if (!s.writableEnded) s.end();
    const call = this.call;
    if (call && this.secret) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        call.once('end', done);
        call.once('error', done);
        call.on('data', () => {});
        call.write({ kind: { $case: 'detach', detach: { bindingReset } } });
        call.end();
      });
    } else {
      call?.cancel();
    }
    this.call = undefined;
    for (const st of this.clients.values()) for (const s of st.streams.values()) s.destroy();
    this.clients.clear();
    this.stub.close();
  }
}

/** What is left of a timeout (ms; < 0 waits forever) started at `since`. */
function remaining(timeoutMs: number, since: number): number {
  return timeoutMs < 0 ? timeoutMs : Math.max(0, timeoutMs - (Date.now() - since));
}

function appeared(st: ClientState, id: string, ms: number): Promise<DsStream | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      st.appeared.delete(id);
      resolve(undefined);
    }, ms);
    st.appeared.set(id, (s) => {
      clearTimeout(timer);
      resolve(s);
    });
  });
}

function* chunks(buffers: Buffer[]): Generator<Buffer> {
  for (const b of buffers) {
    for (let at = 0; at < b.length; at += UNREAD_CHUNK) yield b.subarray(at, at + UNREAD_CHUNK);
  }
}

/** The responses of a handoff call, one at a time, and its write-side flow control. */
function responsesOf(call: ClientDuplexStream<HandoffRequest, HandoffResponse>) {
  const queue: HandoffResponse[] = [];
  let failure: unknown;
  let ended = false;
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  call.on('data', (m: HandoffResponse) => {
    queue.push(m);
    poke();
  });
  call.on('error', (err: Error) => {
    failure = err;
    poke();
  });
  call.on('end', () => {
    ended = true;
    poke();
  });
  call.on('drain', poke);
  const wait = (deadline: number | undefined) =>
    new Promise<boolean>((resolve) => {
      const timer =
        deadline === undefined ? undefined : setTimeout(() => resolve(false), deadline - Date.now());
      wake = () => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
    }).finally(() => {
      wake = undefined;
    });
  return {
    /** The next response; DEADLINE_EXCEEDED after `deadline` (ms since the epoch). */
    async next(deadline: number | undefined, late: string): Promise<HandoffResponse> {
      for (;;) {
        const m = queue.shift();
        if (m) return m;
        if (failure) throw failure;
        if (ended) throw BackplaneError.unavailable('the coordinator ended the handoff call');
        if (!(await wait(deadline))) throw BackplaneError.of('TIMEOUT', late);
      }
    },
    /** Resolves when the call can take more, or fails with the call's error. */
    async drained(): Promise<void> {
      while (call.writableNeedDrain) {
        if (failure) throw failure;
        if (ended) throw BackplaneError.unavailable('the coordinator ended the handoff call');
        await wait(undefined);
      }
    },
  };
}
