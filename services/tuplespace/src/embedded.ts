import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CallLimits,
  type Logger,
  openStore,
  type RunningService,
  type Store,
  startService,
  type TlsFiles,
} from '@backplane/runtime';
import { ADMIN_GROUP } from './access';
import { tupleSpaceService } from './server';
import { TupleSpaces } from './tuplespaces';

export interface TupleSpaceServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  dataDir: string;
  store?: Store;
  adminUser?: string;
  /** Used when the admin user does not exist yet; empty = generate one into <dataDir>/admin-password. */
  adminPassword?: string;
  pluginsDir?: string;
  /**
   * WaitToTake hands no tuple over in the last `waitMarginMs` before the caller's deadline (default 100): a
   * tuple handed over then might reach the caller after it gave up, and be lost to everyone.
   */
  waitMarginMs?: number;
  log?: Logger;
  tls?: TlsFiles;
  shutdownTimeoutMs?: number;
  /** Load shedding (default: the runtime's DEFAULT_CALL_LIMITS). */
  limits?: CallLimits;
  maxStreamsPerConnection?: number;
  reapEveryMs?: number;
}

export interface RunningTupleSpaceServer extends RunningService {
  readonly spaces: TupleSpaces;
  /** Where the generated admin password was written (when it was generated). */
  readonly adminPasswordFile?: string;
}

/** Opens the store, loads every space and starts the TupleSpaceService. */
export async function startTupleSpaceServer(
  options: TupleSpaceServerOptions,
): Promise<RunningTupleSpaceServer> {
  const store = options.store ?? (await openStore(join(options.dataDir, 'db')));
  const ownsStore = !options.store;
  const spaces = await TupleSpaces.open({
    store,
    pluginsDir: options.pluginsDir || undefined,
    log: options.log,
    reapEveryMs: options.reapEveryMs,
  });
  const adminUser = options.adminUser ?? 'admin';
  let adminPasswordFile: string | undefined;
  if (!spaces.users.has(adminUser)) {
    let password = options.adminPassword;
    if (!password) {
      adminPasswordFile = join(options.dataDir, 'admin-password');
      password = existsSync(adminPasswordFile)
        ? readFileSync(adminPasswordFile, 'utf8').trim()
        : randomBytes(18).toString('base64url');
      writeFileSync(adminPasswordFile, `${password}\n`, { mode: 0o600 });
    }
    await spaces.users.put(adminUser, password, [ADMIN_GROUP]);
    options.log?.info({ user: adminUser, passwordFile: adminPasswordFile }, 'admin user created');
  }
  const running = await startService({
    name: 'tuplespace',
    services: [tupleSpaceService(spaces, { waitMarginMs: options.waitMarginMs })],
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 8200,
    log: options.log,
    tls: options.tls,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    limits: options.limits,
    maxStreamsPerConnection: options.maxStreamsPerConnection,
    grpcOptions: { 'grpc.max_receive_message_length': 16 * 1024 * 1024 },
    onClose: [() => spaces.close(), () => (ownsStore ? store.close() : undefined)],
  });
  return Object.assign(running, { spaces, adminPasswordFile });
}
