import { type CallOptions, RECONNECT_OPTIONS, serverStream, unary } from '@backplane/client-core';
import {
  type Binding,
  type Location,
  NamingServiceClient,
  type Scope,
  WatchEventType,
  type WatchResponse,
} from '@backplane/proto/naming';
import { type ChannelCredentials, credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';

export const DEFAULT_NAMESERVER = '127.0.0.1:7000';

/** The default name server: $BACKPLANE_NAMESERVER, or the well-known 127.0.0.1:7000. */
export function defaultNameServer(): string {
  return process.env.BACKPLANE_NAMESERVER || DEFAULT_NAMESERVER;
}

export interface NamingClientOptions {
  /** host:port of the name server; default: defaultNameServer(). */
  nameServer?: string;
  credentials?: ChannelCredentials;
  /** Bearer token sent with every call. */
  token?: string;
}

export interface BindOptions {
  scope?: string;
  types?: string[];
  /** 0 = no lease. */
  leaseTtlMs?: number;
}

export interface ListOptions {
  scope?: string;
  prefix?: string;
  pageSize?: number;
  includeInherited?: boolean;
}

export interface WatchOptions {
  scope?: string;
  prefix?: boolean;
  includeInherited?: boolean;
}

export type WatchEvent = {
  type: 'EXISTING' | 'SYNCED' | 'BOUND' | 'UNBOUND' | 'MIGRATED' | 'EXPIRED';
  binding?: Binding;
  revision: number;
};

const typeNames: Record<number, WatchEvent['type']> = {
  [WatchEventType.WATCH_EVENT_TYPE_EXISTING]: 'EXISTING',
  [WatchEventType.WATCH_EVENT_TYPE_SYNCED]: 'SYNCED',
  [WatchEventType.WATCH_EVENT_TYPE_BOUND]: 'BOUND',
  [WatchEventType.WATCH_EVENT_TYPE_UNBOUND]: 'UNBOUND',
  [WatchEventType.WATCH_EVENT_TYPE_MIGRATED]: 'MIGRATED',
  [WatchEventType.WATCH_EVENT_TYPE_EXPIRED]: 'EXPIRED',
};

function toEvent(res: WatchResponse): WatchEvent {
  return { type: typeNames[res.type] ?? 'SYNCED', binding: res.binding, revision: res.revision };
}

/** Promise-based access to every NamingService RPC. Failures reject with BackplaneError. */
export class NamingClient {
  readonly nameServer: string;
  private readonly client: NamingServiceClient;
  private readonly token: string | undefined;

  constructor(options: NamingClientOptions = {}) {
    this.nameServer = options.nameServer ?? defaultNameServer();
    this.client = new NamingServiceClient(
      this.nameServer,
      options.credentials ?? grpcCredentials.createInsecure(),
      RECONNECT_OPTIONS,
    );
    this.token = options.token;
  }

  private opts(o: CallOptions = {}): CallOptions {
    if (!this.token) return o;
    const metadata = o.metadata?.clone() ?? new Metadata();
    metadata.set('authorization', `Bearer ${this.token}`);
    return { ...o, metadata };
  }

  /** Publishes a new server under `name`; returns its binding, address id and owner secret. */
  bind(name: string, location: Location, options: BindOptions = {}, call?: CallOptions) {
    return unary(
      this.client.bind.bind(this.client),
      {
        scope: options.scope ?? '',
        name,
        types: options.types ?? [],
        location,
        leaseTtlMs: options.leaseTtlMs ?? 0,
        addressId: '',
        ownerSecret: '',
      },
      this.opts(call),
    );
  }

  /** Binds one more name to an existing address. */
  bindAlias(name: string, addressId: string, ownerSecret: string, scope = '', call?: CallOptions) {
    return unary(
      this.client.bind.bind(this.client),
      { scope, name, types: [], location: undefined, leaseTtlMs: 0, addressId, ownerSecret },
      this.opts(call),
    );
  }

  async unbind(name: string, ownerSecret: string, scope = '', call?: CallOptions): Promise<void> {
    await unary(this.client.unbind.bind(this.client), { scope, name, ownerSecret }, this.opts(call));
  }

  keepAlive(addressId: string, ownerSecret: string, call?: CallOptions) {
    return unary(this.client.keepAlive.bind(this.client), { addressId, ownerSecret }, this.opts(call));
  }

  async migrate(
    addressId: string,
    ownerSecret: string,
    location: Location,
    call?: CallOptions,
  ): Promise<Binding[]> {
    const res = await unary(
      this.client.migrate.bind(this.client),
      { addressId, ownerSecret, location },
      this.opts(call),
    );
    return res.bindings;
  }

  resolve(name: string, options: { scope?: string; expectedType?: string } = {}, call?: CallOptions) {
    return unary(
      this.client.resolve.bind(this.client),
      { scope: options.scope ?? '', name, expectedType: options.expectedType ?? '' },
      this.opts(call),
    );
  }

  /** One page of bindings. */
  list(options: ListOptions & { pageToken?: string } = {}, call?: CallOptions) {
    return unary(
      this.client.list.bind(this.client),
      {
        scope: options.scope ?? '',
        prefix: options.prefix ?? '',
        pageSize: options.pageSize ?? 0,
        pageToken: options.pageToken ?? '',
        includeInherited: options.includeInherited ?? false,
      },
      this.opts(call),
    );
  }

  /** Every binding, following page tokens. */
  async *listAll(options: ListOptions = {}, call?: CallOptions): AsyncGenerator<Binding> {
    let pageToken = '';
    do {
      const page = await this.list({ ...options, pageToken }, call);
      yield* page.bindings;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Current state (EXISTING…, SYNCED), then every change. Break out of the loop (or abort) to stop. */
  async *watch(name: string, options: WatchOptions = {}, call?: CallOptions): AsyncGenerator<WatchEvent> {
    const stream = serverStream(
      this.client.watch.bind(this.client),
      {
        scope: options.scope ?? '',
        name,
        prefix: options.prefix ?? false,
        includeInherited: options.includeInherited ?? false,
      },
      this.opts(call),
    );
    for await (const res of stream) yield toEvent(res);
  }

  async createScope(name: string, parent = '', call?: CallOptions): Promise<Scope | undefined> {
    return (await unary(this.client.createScope.bind(this.client), { name, parent }, this.opts(call))).scope;
  }

  async deleteScope(name: string, force = false, call?: CallOptions): Promise<void> {
    await unary(this.client.deleteScope.bind(this.client), { name, force }, this.opts(call));
  }

  close(): void {
    this.client.close();
  }
}
