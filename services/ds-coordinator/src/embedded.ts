import { join } from 'node:path';
import {
  Audiences,
  type CallLimits,
  type Logger,
  openStore,
  type RunningService,
  silentLogger,
  startService,
  type TlsFiles,
} from '@backplane/runtime';
import { Bindings } from './bindings';
import { DEFAULT_PORT, DEFAULT_SERVICE_PORT } from './config';
import { Coordinator, type DefaultPolicy } from './coordinator';
import { type Listeners, openListeners } from './listeners';
import { coordinatorService } from './server';

export interface DsCoordinatorOptions {
  host?: string;
  /** Control (gRPC) port; 0 = any free port. */
  port?: number;
  advertiseHost?: string;
  /** The host ds nodes outside the coordinator's network dial (its data port published there). */
  externalHost?: string;
  dataDir: string;
  /** name → where its clients dial (port 0 = any free port); default `default` on 7410. */
  services?: Map<string, { host: string; port: number }>;
  /** Port nodes dial for data connections; default 7401, 0 = any free port. */
  dataPort?: number;
  defaultPolicy?: DefaultPolicy;
  bindingWaitMs?: number;
  /** A client with no connection for this long loses its binding (default a day; 0 = never). */
  bindingTtlMs?: number;
  pendingTimeoutMs?: number;
  /** How long a node may take to dial a granted data connection before the stream is given up (10 s). */
  dialTimeoutMs?: number;
  maxConnectionsPerClient?: number;
  proxyProtocol?: boolean;
  /** The service listeners speak TLS with the coordinator's certificate (the data listener does whenever it has one). */
  serviceTls?: boolean;
  log?: Logger;
  tls?: TlsFiles;
  authToken?: string;
  shutdownTimeoutMs?: number;
  /** Load shedding (default: the runtime's DEFAULT_CALL_LIMITS). */
  limits?: CallLimits;
  maxStreamsPerConnection?: number;
}

export interface RunningDsCoordinator extends RunningService {
  readonly coordinator: Coordinator;
  /** name → host:port its clients dial. */
  readonly services: Map<string, string>;
  readonly dataAddress: string;
}

/** Starts a coordinator: the control plane (gRPC), the service listeners and the data listener. */
export async function startDsCoordinator(options: DsCoordinatorOptions): Promise<RunningDsCoordinator> {
  const host = options.host ?? '127.0.0.1';
  const store = await openStore(join(options.dataDir, 'db'));
  let listeners: Listeners | undefined;
  let running: RunningService | undefined;
  try {
    const bindings = await Bindings.open(store, { ttlMs: options.bindingTtlMs ?? 86_400_000 });
    const services = new Map<string, string>();
    const log = options.log ?? silentLogger();
    const coordinator = new Coordinator({
      services,
      bindings,
      log,
      dataAddress: () => listeners?.dataAddress ?? '',
      dataTls: () => listeners?.dataTls ?? false,
      defaultPolicy: options.defaultPolicy,
      bindingWaitMs: options.bindingWaitMs,
      pendingTimeoutMs: options.pendingTimeoutMs,
      dialTimeoutMs: options.dialTimeoutMs,
      maxConnectionsPerClient: options.maxConnectionsPerClient,
    });
    const wanted = options.services ?? new Map([['default', { host, port: DEFAULT_SERVICE_PORT }]]);
    listeners = await openListeners(coordinator, {
      services: wanted,
      dataHost: host,
      dataPort: options.dataPort ?? DEFAULT_PORT + 1,
      advertiseHost: options.advertiseHost,
      proxyProtocol: options.proxyProtocol ?? false,
      tls: options.tls,
      serviceTls: options.serviceTls,
      log,
    });
    for (const [name, address] of listeners.services) services.set(name, address);
    const opened = listeners;
    running = await startService({
      name: 'ds-coordinator',
      services: [
        coordinatorService(
          coordinator,
          new Audiences(
            options.advertiseHost ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host),
            options.externalHost,
          ),
        ),
      ],
      host,
      port: options.port ?? DEFAULT_PORT,
      log,
      tls: options.tls,
      authToken: options.authToken,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      limits: options.limits,
      maxStreamsPerConnection: options.maxStreamsPerConnection,
      grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
      onClose: [() => bindings.close(), () => store.close(), () => opened.close(), () => coordinator.close()],
    });
    return Object.assign(running, { coordinator, services, dataAddress: opened.dataAddress });
  } catch (err) {
    await listeners?.close();
    await store.close();
    throw err;
  }
}
