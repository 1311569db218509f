import { NamingServiceService } from '@backplane/proto/naming';
import {
  Audiences,
  type CallLimits,
  EXTERNAL_ADDRESS_KEY,
  type Logger,
  openStore,
  type PeerAccess,
  type RunningService,
  type Store,
  serviceNameOf,
  startService,
  type TlsFiles,
  withHost,
} from '@backplane/runtime';
import { ParentNameServer } from './parent';
import { Registry } from './registry';
import { namingService } from './server';

export interface NameServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Where level keeps the bindings; or pass `store`. */
  dataDir?: string;
  store?: Store;
  /** Host published for the name server itself; default: the listen host (127.0.0.1 for 0.0.0.0). */
  advertiseHost?: string;
  /** The host programs outside the services' network dial; they see bindings at external addresses. */
  externalHost?: string;
  parentNameServer?: string;
  parentScope?: string;
  /** TLS and token for calls to the parent name server (default plaintext, no token). */
  peer?: PeerAccess;
  leaseGraceMs?: number;
  log?: Logger;
  tls?: TlsFiles;
  authToken?: string;
  shutdownTimeoutMs?: number;
  /** Load shedding (default: the runtime's DEFAULT_CALL_LIMITS). */
  limits?: CallLimits;
  maxStreamsPerConnection?: number;
}

export interface RunningNameServer extends RunningService {
  readonly registry: Registry;
}

/** Opens the store, starts the NamingService and publishes the name server in its own default scope. */
export async function startNameServer(options: NameServerOptions): Promise<RunningNameServer> {
  const store = options.store ?? (await openStore(options.dataDir ?? './data/name-server'));
  const ownsStore = !options.store;
  const parent = options.parentNameServer
    ? new ParentNameServer(options.parentNameServer, options.parentScope ?? '', 5000, options.peer)
    : undefined;
  const host = options.host ?? '127.0.0.1';
  const advertiseHost = options.advertiseHost ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  // the registry needs its own address, known only once the port is bound: resolve it lazily
  let self = '';
  const registry = await Registry.open({
    store,
    leaseGraceMs: options.leaseGraceMs,
    parent,
    self: () => self,
    log: options.log,
  });
  const running = await startService({
    name: 'name-server',
    services: [namingService(registry, new Audiences(advertiseHost, options.externalHost))],
    host,
    port: options.port ?? 7000,
    log: options.log,
    tls: options.tls,
    authToken: options.authToken,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    limits: options.limits,
    maxStreamsPerConnection: options.maxStreamsPerConnection,
    onClose: [() => (ownsStore ? store.close() : undefined), () => registry.close(), () => parent?.close()],
  });
  self = `${advertiseHost}:${running.port}`;
  await registry.publishSelf('name-server', [serviceNameOf(NamingServiceService as never)], {
    host: advertiseHost,
    port: running.port,
    metadata: options.externalHost ? { [EXTERNAL_ADDRESS_KEY]: withHost(self, options.externalHost) } : {},
  });
  return Object.assign(running, { registry });
}
