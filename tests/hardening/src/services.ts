import { readFileSync } from 'node:fs';
import { freePort, type ServiceBinary, startServiceBinary } from '@backplane/runtime/testing';

export type ServiceName = 'name-server' | 'ibp-depot' | 'tuplespace' | 'sharing' | 'ds-coordinator';

export const SERVICE_NAMES: readonly ServiceName[] = [
  'name-server',
  'ibp-depot',
  'tuplespace',
  'sharing',
  'ds-coordinator',
];

/**
 * How long a service process may live: the long runs take over 10 minutes per target (20 kills, then
 * reading back 100,000+ writes), past spawnProcess's default bound, which killed services mid-check.
 */
const MAX_LIFETIME_MS = 3 * 3600_000;

/** The tuple-space admin the runs create; the runs never log it. */
export const TS_ADMIN = { user: 'admin', password: 'hardening-admin-password' };

interface Spec {
  main: string;
  ready: RegExp;
  protoPackage: string;
  env: () => Promise<Record<string, string>>;
}

const SPECS: Record<ServiceName, Spec> = {
  'name-server': {
    main: require.resolve('@backplane/name-server/dist/main.js'),
    ready: /name server ready/,
    protoPackage: 'backplane.naming.v1',
    env: async () => ({}),
  },
  'ibp-depot': {
    main: require.resolve('@backplane/ibp-depot/dist/main.js'),
    ready: /depot ready/,
    protoPackage: 'backplane.ibp.v1',
    env: async () => ({
      BACKPLANE_IBP_HOSTNAME: '127.0.0.1',
      // room for the long fault run's ~30,000 allocations of 1–60 KB (256 MB filled up after 9 of 20 kills)
      BACKPLANE_IBP_STABLE_SIZE_MB: '2048',
      BACKPLANE_IBP_VOLATILE_SIZE_MB: '128',
    }),
  },
  tuplespace: {
    main: require.resolve('@backplane/tuplespace/dist/main.js'),
    ready: /tuple space server ready/,
    protoPackage: 'backplane.tuplespace.v1',
    env: async () => ({
      BACKPLANE_TS_ADMIN_USER: TS_ADMIN.user,
      BACKPLANE_TS_ADMIN_PASSWORD: TS_ADMIN.password,
    }),
  },
  sharing: {
    main: require.resolve('@backplane/sharing/dist/main.js'),
    ready: /sharing node ready/,
    protoPackage: 'backplane.sharing.v1',
    env: async () => ({}),
  },
  'ds-coordinator': {
    main: require.resolve('@backplane/ds-coordinator/dist/main.js'),
    ready: /ds coordinator ready/,
    protoPackage: 'backplane.ds.v1',
    env: async () => ({ BACKPLANE_DS_DATA_PORT: '0', BACKPLANE_DS_SERVICES: `default=${await freePort()}` }),
  },
};

export function protoPackageOf(name: ServiceName): string {
  return SPECS[name].protoPackage;
}

/**
 * One service as its own process (its real entry point), which a run can kill -9 and restart on the
 * same port and data directory, and whose memory it can read.
 */
export class ServiceProcess {
  private current: ServiceBinary;
  /** Times the process exited without being told to. */
  unexpectedExits = 0;
  private expectingExit = false;
  private maxRssKb = 0;

  private constructor(
    readonly name: ServiceName,
    private readonly dataDir: string,
    private readonly env: Record<string, string>,
    first: ServiceBinary,
  ) {
    this.current = first;
    this.watch();
  }

  static async start(
    name: ServiceName,
    dataDir: string,
    env: Record<string, string> = {},
  ): Promise<ServiceProcess> {
    const spec = SPECS[name];
    const fullEnv = {
      BACKPLANE_NAMESERVER: '',
      BACKPLANE_LOG_LEVEL: 'info',
      ...(await spec.env()),
      ...env,
    };
    const bin = await startServiceBinary(spec.main, {
      dataDir,
      env: fullEnv,
      ready: spec.ready,
      maxLifetimeMs: MAX_LIFETIME_MS,
    });
    return new ServiceProcess(name, dataDir, fullEnv, bin);
  }

  get address(): string {
    return this.current.address;
  }

  get port(): number {
    return this.current.port;
  }

  get pid(): number {
    return this.current.proc.child.pid ?? -1;
  }

  /** The ds coordinator's client-facing port for service `default`. */
  get dsServicePort(): number {
    const m = /default=(\d+)/.exec(this.env.BACKPLANE_DS_SERVICES ?? '');
    return m ? Number(m[1]) : 0;
  }

  alive(): boolean {
    return this.current.proc.child.exitCode === null && this.current.proc.child.signalCode === null;
  }

  output(): string {
    return this.current.proc.output();
  }

  /** Resident memory now, in KiB (0 when the process is gone). */
  rssKb(): number {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      const kb = m ? Number(m[1]) : 0;
      this.maxRssKb = Math.max(this.maxRssKb, kb);
      return kb;
    } catch {
      return 0;
    }
  }

  /** The highest resident memory seen so far, over every incarnation. */
  peakRssKb(): number {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      this.maxRssKb = Math.max(this.maxRssKb, m ? Number(m[1]) : 0);
    } catch {
      // gone: keep what was seen
    }
    return this.maxRssKb;
  }

  private watch(): void {
    const proc = this.current.proc;
    void proc.exited.then(() => {
      if (!this.expectingExit && proc === this.current.proc) this.unexpectedExits += 1;
    });
  }

  /** kill -9 (a crash): nothing is flushed, nothing shut down. */
  async crash(): Promise<void> {
    this.peakRssKb();
    this.expectingExit = true;
    await this.current.proc.kill();
    this.expectingExit = false;
  }

  /** Starts again on the same port and data directory (after a crash or stop). */
  async restart(): Promise<void> {
    if (this.alive()) await this.crash();
    const spec = SPECS[this.name];
    for (let attempt = 0; ; attempt += 1) {
      try {
        this.current = await startServiceBinary(spec.main, {
          dataDir: this.dataDir,
          port: this.current.port,
          env: this.env,
          ready: spec.ready,
          maxLifetimeMs: MAX_LIFETIME_MS,
        });
        break;
      } catch (err) {
        // the port may linger for a moment after a kill
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    this.watch();
  }

  /** SIGTERM, as an operator would stop it. */
  async stop(): Promise<void> {
    this.peakRssKb();
    this.expectingExit = true;
    await this.current.proc.stop();
  }
}
