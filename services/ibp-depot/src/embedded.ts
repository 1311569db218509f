import { isAbsolute, join } from 'node:path';
import { bufferWithRoom } from '@backplane/proto/ibp';
import {
  Audiences,
  type CallLimits,
  type Logger,
  openStore,
  type PeerAccess,
  type RunningService,
  type Store,
  startService,
  type TlsFiles,
} from '@backplane/runtime';
import { MB } from './config';
import { Depot } from './depot';
import { depotService } from './server';
import { allowList } from './transfer';

export interface DepotServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Metadata (level) lives here, and the pools by default. */
  dataDir: string;
  store?: Store;
  stableSizeMb?: number;
  stableDir?: string;
  volatileSizeMb?: number;
  volatileDir?: string;
  /** Host put in capabilities; default the advertise host. */
  hostname?: string;
  advertiseHost?: string;
  /** The host programs outside the depot's network dial: the host in the capabilities they get. */
  externalHost?: string;
  maxDurationSeconds?: number;
  allowNetworks?: string;
  log?: Logger;
  tls?: TlsFiles;
  /** TLS and token for Copy's calls to target depots (default plaintext, no token). */
  peer?: PeerAccess;
  authToken?: string;
  shutdownTimeoutMs?: number;
  /** Load shedding (default: the runtime's DEFAULT_CALL_LIMITS). */
  limits?: CallLimits;
  maxStreamsPerConnection?: number;
}

export interface RunningDepot extends RunningService {
  readonly depot: Depot;
}

const under = (base: string, dir: string | undefined, fallback: string) =>
  dir ? (isAbsolute(dir) ? dir : join(process.cwd(), dir)) : join(base, fallback);

/** Opens the metadata store and pools, starts the DepotService, and puts this address in capabilities. */
export async function startDepot(options: DepotServerOptions): Promise<RunningDepot> {
  const store = options.store ?? (await openStore(join(options.dataDir, 'meta')));
  const ownsStore = !options.store;
  const depot = await Depot.open({
    store,
    pools: {
      stable: {
        dir: under(options.dataDir, options.stableDir, 'stable'),
        capacity: (options.stableSizeMb ?? 1024) * MB,
      },
      volatile: {
        dir: under(options.dataDir, options.volatileDir, 'volatile'),
        capacity: (options.volatileSizeMb ?? 256) * MB,
      },
    },
    maxDurationSeconds: options.maxDurationSeconds ?? 30 * 24 * 3600,
    log: options.log,
    chunkAllocator: bufferWithRoom,
  });
  const host = options.host ?? '127.0.0.1';
  const advertiseHost = options.advertiseHost || (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  const running = await startService({
    name: 'ibp-depot',
    services: [
      depotService(
        depot,
        allowList(options.allowNetworks ?? '127.0.0.0/8,::1/128'),
        options.peer,
        new Audiences(advertiseHost, options.externalHost),
      ),
    ],
    host,
    port: options.port ?? 6714,
    log: options.log,
    tls: options.tls,
    authToken: options.authToken,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    limits: options.limits,
    maxStreamsPerConnection: options.maxStreamsPerConnection,
    grpcOptions: { 'grpc.max_receive_message_length': 8 * MB },
    flowControlWindow: 16 * MB,
    onClose: [() => (ownsStore ? store.close() : undefined), () => depot.close()],
  });
  const capHost = options.hostname || advertiseHost;
  depot.setAddress(capHost, running.port);
  return Object.assign(running, { depot });
}
