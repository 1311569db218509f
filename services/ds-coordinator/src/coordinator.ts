import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { HandoffReason } from '@backplane/proto/ds';
import { BackplaneError, type Logger, secretKey } from '@backplane/runtime';
import type { Bindings } from './bindings';
import { type ClientRecord, NodeSession } from './node-session';
import { RelayStream, Signal } from './relay-stream';
import { clientUrlOf, LIMITS, nodeUrlOf, parseClientUrl, parseNodeUrl, validateName } from './urls';

export type DefaultPolicy = 'least-clients' | 'round-robin';

export interface CoordinatorOptions {
  /** Service name → the address its clients dial (filled in once listening). */
  services: Map<string, string>;
  bindings: Bindings;
  log: Logger;
  /** host:port nodes dial for data connections (filled in once listening). */
  dataAddress: () => string;
  /** Whether the data listener speaks TLS. */
  dataTls?: () => boolean;
  /** How the contact node places a client that is not bound (or whose node is gone). */
  defaultPolicy?: DefaultPolicy;
  /** How long a bound client's new connection waits for its node to come back before the default choice. */
  bindingWaitMs?: number;
  /** How long a connection waits for any node of its service before it is closed. */
  pendingTimeoutMs?: number;
  /** How long a granted data connection may take to be dialled. */
  dialTimeoutMs?: number;
  /** Connections one client may hold per service (default 1000); more are closed at once. */
  maxConnectionsPerClient?: number;
}

/** A handoff in progress: the client's streams are released by `from` and go to `target`. */
export interface Handoff {
  readonly client: ClientRecord;
  readonly from: NodeSession;
  readonly target: NodeSession;
  readonly streams: RelayStream[];
  readonly outputs: Map<string, Promise<void>>;
  readonly startedAt: number;
  readonly done: Signal;
}

interface Grant {
  stream: RelayStream;
  client: ClientRecord;
  node: NodeSession;
  dialled: Signal;
}

interface NodeWaiter {
  name: string;
  /** Only this node (a bound client waiting for its node), or any of the name. */
  nodeUrl: string | undefined;
  resolve: (node: NodeSession | undefined) => void;
}

/**
 * The contact node: holds every client connection, places each on a node (the client's binding, else the
 * default policy), relays its bytes, and moves all of a client's streams between nodes on handoff, drain
 * and node failure. Domain only: sockets in, control messages out through each NodeSession.
 */
export class Coordinator {
  private readonly sessions = new Map<string, NodeSession>();
  /** Sessions by secretKey(session secret): a lookup does not compare secrets. */
  private readonly bySecret = new Map<string, NodeSession>();
  private readonly clients = new Map<string, ClientRecord>();
  private readonly grants = new Map<string, Grant>();
  private waiters: NodeWaiter[] = [];
  private readonly pending = new Map<string, number>();
  private nextStream = 1;
  /** Connections closed for being over a client's limit. */
  refused = 0;
  private roundRobin = 0;
  private closing = false;
  private readonly log: Logger;
  private readonly bindings: Bindings;

  constructor(private readonly options: CoordinatorOptions) {
    this.log = options.log;
    this.bindings = options.bindings;
  }

  get serviceNames(): string[] {
    return [...this.options.services.keys()];
  }

  serviceAddress(name: string): string {
    return this.options.services.get(name) ?? '';
  }

  get dataAddress(): string {
    return this.options.dataAddress();
  }

  // ---- nodes -------------------------------------------------------------------------------------

  /**
   * ds_service constructor: attaches a node under a configured name. `dialable` gives an address of the
   * coordinator as the node can dial it (a node outside the coordinator's network gets its external host).
   */
  attach(
    name: string,
    node: string,
    send: (m: Parameters<NodeSession['send']>[0]) => Promise<void>,
    dialable: (address: string) => string = (a) => a,
  ) {
    validateName('service name', name);
    validateName('node id', node);
    const address = this.options.services.get(name);
    if (address === undefined) {
      throw BackplaneError.notFound(
        `no distributed service named ${JSON.stringify(name)} at this coordinator (known: ${this.serviceNames.join(', ')})`,
        { reason: 'SERVICE_NOT_FOUND' },
      );
    }
    const url = nodeUrlOf(node, name);
    if (this.sessions.has(url)) {
      throw BackplaneError.alreadyExists(`a ds_service named ${name} is already attached on node ${node}`, {
        reason: 'NODE_ALREADY_ATTACHED',
      });
    }
    if (this.closing) throw BackplaneError.unavailable('the coordinator is shutting down');
    const session = new NodeSession(url, name, node, randomBytes(18).toString('base64url'), send);
    this.sessions.set(url, session);
    this.bySecret.set(secretKey(session.secret), session);
    session.send({
      kind: {
        $case: 'attached',
        attached: {
          nodeUrl: url,
          session: session.secret,
          dataAddress: dialable(this.options.dataAddress()),
          serviceAddress: dialable(address),
          dataTls: this.options.dataTls?.() ?? false,
        },
      },
    });
    this.log.info({ node: url }, 'node attached');
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.name === name && (w.nodeUrl === undefined || w.nodeUrl === url)) w.resolve(session);
      else this.waiters.push(w);
    }
    return session;
  }

  /** ds_service.close(binding_reset): closes its clients' streams, forgets their bindings if asked. */
  async detach(session: NodeSession, bindingReset: boolean): Promise<void> {
    if (session.closed) return;
    this.removeSession(session);
    session.detached = true;
    for (const client of session.clients) {
      for (const stream of client.streams) stream.close();
      client.node = undefined;
    }
    session.clients.clear();
    if (bindingReset) await this.bindings.resetNode(session.name, session.node);
    this.log.info({ node: session.url, bindingReset }, 'node detached');
  }

  /** The session ended without Detach: its clients are handed to other nodes (reason NODE_FAILED). */
  sessionFailed(session: NodeSession): void {
    if (session.closed) return;
    this.removeSession(session);
    if (this.closing) return;
    this.log.warn({ node: session.url, clients: session.clients.size }, 'node failed; re-homing its clients');
    for (const client of [...session.clients]) {
      if (client.moving) continue; // a handoff from it is in progress: that call completes it
      session.clients.delete(client);
      client.node = undefined;
      if (client.streams.size > 0) void this.rehome(client, session);
    }
  }

  /** StreamClosed from a node's application. */
  streamClosed(session: NodeSession, streamId: string, writeOnly: boolean): void {
    for (const client of session.clients) {
      for (const stream of client.streams) {
        if (stream.id === streamId) {
          stream.appClosed(writeOnly ? 'write' : 'all');
          return;
        }
      }
    }
  }

  session(secret: string): NodeSession {
    const session = this.bySecret.get(secretKey(secret));
    if (!session || session.closed) {
      throw BackplaneError.incorrectState('not an attached ds_service session (closed, failed or unknown)', {
        reason: 'SESSION_NOT_ATTACHED',
      });
    }
    return session;
  }

  /** get_all_targets: the other nodes under the session's name. */
  targets(session: NodeSession): NodeSession[] {
    return this.nodesOf(session.name).filter((n) => n !== session);
  }

  private removeSession(session: NodeSession): void {
    session.closed = true;
    this.sessions.delete(session.url);
    this.bySecret.delete(secretKey(session.secret));
  }

  private nodesOf(name: string): NodeSession[] {
    return [...this.sessions.values()].filter((n) => n.name === name && !n.closed);
  }

  /** The contact node's default choice among the nodes of a name. */
  private choose(name: string, exclude?: NodeSession): NodeSession | undefined {
    const candidates = this.nodesOf(name).filter((n) => n !== exclude);
    // a node being drained takes new clients only when no other node is there
    const open = candidates.filter((n) => n.draining === 0);
    const nodes = open.length > 0 ? open : candidates;
    if (nodes.length === 0) return undefined;
    const turn = this.roundRobin++;
    if (this.options.defaultPolicy === 'round-robin') return nodes[turn % nodes.length];
    let best = nodes[turn % nodes.length] as NodeSession;
    for (const n of nodes) if (n.clients.size < best.clients.size) best = n;
    return best;
  }

  private waitForNode(
    name: string,
    nodeUrl: string | undefined,
    ms: number,
  ): Promise<NodeSession | undefined> {
    return new Promise((resolve) => {
      const waiter: NodeWaiter = {
        name,
        nodeUrl,
        resolve: (node) => {
          clearTimeout(timer);
          resolve(node);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, ms);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  // ---- clients -----------------------------------------------------------------------------------

  /** A client connected to a service's address. */
  acceptClient(name: string, socket: Socket, remoteAddress: string): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const url = clientUrlOf(remoteAddress);
    const key = clientKey(name, url);
    let client = this.clients.get(key);
    if (!client) {
      client = { key, name, url, streams: new Set(), node: undefined, moving: undefined };
      this.clients.set(key, client);
      this.bindings.active(name, url);
    }
    const max = this.options.maxConnectionsPerClient ?? 1000;
    if (client.streams.size >= max) {
      this.refused++;
      if (this.refused % 1000 === 1) {
        this.log.warn(
          { client: url, service: name, max },
          'client over its connection limit; closing new ones',
        );
      }
      socket.destroy();
      return;
    }
    const owner = client;
    const stream = new RelayStream(`s${this.nextStream++}`, socket, (s) => {
      owner.streams.delete(s);
      if (owner.streams.size === 0 && !owner.moving) this.forget(owner);
    });
    client.streams.add(stream);
    void this.place(client, stream).catch((err: unknown) => {
      this.log.warn({ err, client: url }, 'could not place a client connection');
      stream.destroy();
    });
  }

  /** Puts a new connection on the client's node: where its streams are, its binding, or the default choice. */
  private async place(client: ClientRecord, stream: RelayStream): Promise<void> {
    const countPending = (delta: number) =>
      this.pending.set(client.name, (this.pending.get(client.name) ?? 0) + delta);
    countPending(1);
    try {
      for (;;) {
        if (stream.closed || this.closing) return;
        if (client.moving) {
          await client.moving;
          continue;
        }
        if (client.node && !client.node.closed) {
          this.grant(stream, client, client.node);
          return;
        }
        const bound = this.bindings.get(client.name, client.url);
        const boundUrl = bound === undefined ? undefined : nodeUrlOf(bound, client.name);
        let node = boundUrl ? this.sessions.get(boundUrl) : undefined;
        if (!node && boundUrl) node = await this.waitForNode(client.name, boundUrl, this.bindingWaitMs);
        if (!node) node = this.choose(client.name);
        if (!node) node = await this.waitForNode(client.name, undefined, this.pendingTimeoutMs);
        if (!node) {
          this.log.info({ client: client.url, service: client.name }, 'no node for the client; closing it');
          stream.destroy();
          return;
        }
        if (client.node || client.moving || node.closed) continue;
        this.assign(client, node);
      }
    } finally {
      countPending(-1);
    }
  }

  private assign(client: ClientRecord, node: NodeSession): void {
    client.node = node;
    node.clients.add(client);
    this.bindings.bind(client.name, client.url, node.node).catch((err: unknown) => {
      this.log.error({ err, client: client.url }, 'could not store a binding');
    });
  }

  /** Grants a data connection for the stream (the token the node dials with); the caller tells the node. */
  private newGrant(stream: RelayStream, client: ClientRecord, node: NodeSession) {
    const token = randomBytes(16);
    const key = secretKey(token);
    const grant: Grant = { stream, client, node, dialled: new Signal() };
    this.grants.set(key, grant);
    stream.counters = node.counters;
    const seq = stream.granted();
    const timer = setTimeout(() => {
      // whatever became of it, nothing waits for this grant any more (a handoff's wait ends)
      grant.dialled.resolve();
      if (this.grants.delete(key) && !stream.closed) {
        stream.dialFailed(seq);
        this.log.warn({ node: node.url, stream: stream.id }, 'a node did not dial its data connection');
      }
    }, this.dialTimeoutMs);
    timer.unref();
    return { grant, wire: { streamId: stream.id, token, writeClosed: stream.outputClosed } };
  }

  /** serve(): a new connection for the node. */
  private grant(stream: RelayStream, client: ClientRecord, node: NodeSession): void {
    const { wire } = this.newGrant(stream, client, node);
    node.send({ kind: { $case: 'newStream', newStream: { clientUrl: client.url, stream: wire } } });
  }

  /** A node dialled the data address and sent its token. */
  acceptData(socket: Socket, token: Buffer): void {
    const key = secretKey(token);
    const grant = this.grants.get(key);
    this.grants.delete(key);
    const current = grant && !grant.node.closed && grant.client.node === grant.node;
    // a detached node still dials the streams it was given, so their output reaches the client
    if (!grant || grant.stream.closed || !(current || grant.stream.isClosing)) {
      socket.destroy();
      grant?.dialled.resolve(); // refused: a handoff waiting for it goes on
      return;
    }
    grant.stream.attachData(socket);
    grant.dialled.resolve();
  }

  // ---- handoff -----------------------------------------------------------------------------------

  /** handoff_to, first half: the client's input stops at `from`; returns the streams `from` must release. */
  beginHandoff(from: NodeSession, clientUrl: string, targetUrl: string): Handoff {
    parseClientUrl(clientUrl);
    parseNodeUrl(targetUrl);
    const client = this.clients.get(clientKey(from.name, clientUrl));
    if (!client || client.node !== from) {
      throw BackplaneError.notFound(`client ${clientUrl} is not handled by ${from.url}`, {
        reason: 'CLIENT_NOT_FOUND',
      });
    }
    const target = this.sessions.get(targetUrl);
    if (!target || target.name !== from.name || target.closed) {
      throw BackplaneError.notFound(`no node ${targetUrl} is attached under ${from.name}`, {
        reason: 'TARGET_NOT_FOUND',
      });
    }
    if (target === from) throw BackplaneError.badParameter(`${targetUrl} is the client's own node`);
    if (client.moving) {
      throw BackplaneError.incorrectState(`a handoff of ${clientUrl} is already in progress`, {
        reason: 'HANDOFF_IN_PROGRESS',
      });
    }
    const done = new Signal();
    client.moving = done.promise;
    const streams = [...client.streams];
    const handoff: Handoff = {
      client,
      from,
      target,
      streams,
      outputs: new Map(streams.map((s) => [s.id, s.beginRelease()])),
      startedAt: performance.now(),
      done,
    };
    return handoff;
  }

  /**
   * handoff_to, second half: the streams continue at the target (or, if it failed meanwhile, at another
   * node) after the old node's unread bytes. Resolves with the node that took the client once it dialled
   * every stream's data connection.
   */
  async completeHandoff(
    handoff: Handoff,
    unread: Map<string, Buffer[]>,
    message: Buffer | undefined,
    writeClosed: ReadonlySet<string>,
    timeoutMs: number,
    requested: HandoffReason = HandoffReason.HANDOFF_REASON_APPLICATION,
  ): Promise<string> {
    const { client, from } = handoff;
    for (const stream of handoff.streams) {
      stream.completeRelease(
        unread.get(stream.id) ?? [],
        writeClosed.has(stream.id),
        handoff.outputs.get(stream.id) ?? Promise.resolve(),
      );
    }
    from.clients.delete(client);
    from.counters.handoffsOut++;
    let target: NodeSession | undefined = handoff.target;
    let reason =
      requested === HandoffReason.HANDOFF_REASON_DRAIN
        ? HandoffReason.HANDOFF_REASON_DRAIN
        : HandoffReason.HANDOFF_REASON_APPLICATION;
    if (target.closed) {
      target = this.choose(client.name, from);
      reason = HandoffReason.HANDOFF_REASON_NODE_FAILED;
    }
    if (!target) {
      client.node = undefined;
      client.moving = undefined;
      handoff.done.resolve();
      for (const stream of client.streams) stream.destroy();
      throw BackplaneError.unavailable(
        `${handoff.target.url} failed during the handoff and no other node is attached`,
      );
    }
    const dialled = this.transfer(client, target, message, reason, from.url);
    client.moving = undefined;
    handoff.done.resolve();
    await withTimeout(dialled, timeoutMs);
    from.recordHandoff(performance.now() - handoff.startedAt);
    return target.url;
  }

  /** Moves a client (whose streams have no data connection) to a node: bind, grant, IncomingHandoff. */
  private transfer(
    client: ClientRecord,
    target: NodeSession,
    message: Buffer | undefined,
    reason: HandoffReason,
    fromNodeUrl: string,
  ): Promise<void> {
    if (client.streams.size === 0) {
      // every connection closed during the move: nothing to hand over, nothing to keep
      this.forget(client);
      return Promise.resolve();
    }
    this.assign(client, target);
    target.counters.handoffsIn++;
    const streams = [...client.streams];
    const grants = streams.map((stream) => this.newGrant(stream, client, target));
    target.send({
      kind: {
        $case: 'incomingHandoff',
        incomingHandoff: {
          clientUrl: client.url,
          message,
          streams: grants.map((g) => g.wire),
          reason,
          fromNodeUrl,
        },
      },
    });
    // a stream the client closes meanwhile (or that no dial reached in time, which closes it) is not waited for
    return Promise.all(grants.map((g) => Promise.race([g.grant.dialled.promise, g.grant.stream.gone]))).then(
      () => undefined,
    );
  }

  /** Drops a client without connections from every record (its binding stays). */
  private forget(client: ClientRecord): void {
    client.node?.clients.delete(client);
    client.node = undefined;
    if (this.clients.get(client.key) === client) {
      this.clients.delete(client.key);
      this.bindings.idle(client.name, client.url);
    }
  }

  /** A node failed with this client's streams: hand them to another node, with a message saying why. */
  private async rehome(client: ClientRecord, failed: NodeSession): Promise<void> {
    const done = new Signal();
    client.moving = done.promise;
    try {
      for (const stream of client.streams) stream.detachForFailure();
      const target =
        this.choose(client.name, failed) ??
        (await this.waitForNode(client.name, undefined, this.pendingTimeoutMs));
      if (!target || this.closing) {
        for (const stream of client.streams) stream.destroy();
        return;
      }
      const message = Buffer.from(`node ${failed.url} failed: its session with the coordinator ended`);
      void this.transfer(client, target, message, HandoffReason.HANDOFF_REASON_NODE_FAILED, failed.url);
      this.log.info({ client: client.url, from: failed.url, to: target.url }, 'client re-homed');
    } finally {
      client.moving = undefined;
      done.resolve();
      if (client.streams.size === 0) this.forget(client);
    }
  }

  /** Drain, one client: the node is asked to hand it to the default choice. Resolves when it moved. */
  async release(session: NodeSession, client: ClientRecord, timeoutMs: number): Promise<string> {
    const target = this.choose(session.name, session);
    if (!target) throw BackplaneError.unavailable(`no other node is attached under ${session.name}`);
    session.send({
      kind: {
        $case: 'release',
        release: { clientUrl: client.url, targetUrl: target.url, reason: HandoffReason.HANDOFF_REASON_DRAIN },
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (client.node === session && !session.closed) {
      if (Date.now() > deadline) {
        throw BackplaneError.of(
          'TIMEOUT',
          `${session.url} did not hand ${client.url} off in ${timeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return client.node?.url ?? '';
  }

  // ---- status ------------------------------------------------------------------------------------

  node(url: string): NodeSession {
    parseNodeUrl(url);
    const node = this.sessions.get(url);
    if (!node) throw BackplaneError.notFound(`no node ${url} is attached`, { reason: 'NODE_NOT_FOUND' });
    return node;
  }

  nodes(): NodeSession[] {
    return [...this.sessions.values()];
  }

  pendingStreams(name: string): number {
    return this.pending.get(name) ?? 0;
  }

  get bindingCount(): number {
    return this.bindings.size;
  }

  /** Clients connected now, and bound clients without connections. */
  clientList(): Array<{ url: string; name: string; nodeUrl: string; streams: number }> {
    const out = new Map<string, { url: string; name: string; nodeUrl: string; streams: number }>();
    for (const [name, url, node] of this.bindings.entries()) {
      out.set(clientKey(name, url), { url, name, nodeUrl: nodeUrlOf(node, name), streams: 0 });
    }
    for (const c of this.clients.values()) {
      const bound = this.bindings.get(c.name, c.url);
      out.set(c.key, {
        url: c.url,
        name: c.name,
        nodeUrl: c.node?.url ?? (bound ? nodeUrlOf(bound, c.name) : ''),
        streams: c.streams.size,
      });
    }
    return [...out.values()];
  }

  liveBytes(node: NodeSession): { toNode: number; fromNode: number } {
    let toNode = node.counters.toNode;
    let fromNode = node.counters.fromNode;
    for (const c of node.clients) {
      for (const s of c.streams) {
        const live = s.liveBytes();
        toNode += live.toNode;
        fromNode += live.fromNode;
      }
    }
    return { toNode, fromNode };
  }

  /** Shutdown: every connection closes; nodes are not re-homed. */
  close(): void {
    this.closing = true;
    for (const w of this.waiters) w.resolve(undefined);
    this.waiters = [];
    for (const c of this.clients.values()) for (const s of c.streams) s.destroy();
    for (const s of this.sessions.values()) s.closed = true;
  }

  private get bindingWaitMs(): number {
    return this.options.bindingWaitMs ?? 5000;
  }
  private get pendingTimeoutMs(): number {
    return this.options.pendingTimeoutMs ?? 30_000;
  }
  private get dialTimeoutMs(): number {
    return this.options.dialTimeoutMs ?? 10_000;
  }
}

/** A client is one source address at one service. */
function clientKey(name: string, clientUrl: string): string {
  return `${name}\u0000${clientUrl}`;
}

/** `promise`, or TIMEOUT after `ms` (0: no bound). */
function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  if (ms === 0) return promise;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(BackplaneError.of('TIMEOUT', `the target did not take the client within ${ms} ms`)),
      ms,
    );
    timer.unref();
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

export { LIMITS };
