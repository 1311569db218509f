/**
 * Configuration from `BACKPLANE_*` environment variables and matching `--flags` (flags win), validated
 * at start-up: a bad value stops the process with an error that names the setting and what is allowed.
 */

import { peerAccess } from './peer';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface Setting<T> {
  /** Environment variable, e.g. BACKPLANE_PORT. */
  env: string;
  /** Flag without dashes, e.g. `port` for --port. */
  flag: string;
  description: string;
  /** Shown in help and docs; `undefined` means the setting is optional. */
  default: T;
  parse(raw: string): T;
}

export type ConfigSpec = Record<string, Setting<unknown>>;
export type ConfigOf<S extends ConfigSpec> = { [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  argv?: readonly string[];
}

function setting<T>(
  env: string,
  description: string,
  defaultValue: T,
  parse: (raw: string) => T,
  flag = env
    .replace(/^BACKPLANE_/, '')
    .toLowerCase()
    .replace(/_/g, '-'),
): Setting<T> {
  return { env, flag, description, default: defaultValue, parse };
}

export const settings = {
  string: (env: string, description: string, defaultValue: string) =>
    setting(env, description, defaultValue, (raw) => raw),
  optionalString: (env: string, description: string) =>
    setting<string | undefined>(env, description, undefined, (raw) => (raw === '' ? undefined : raw)),
  int: (env: string, description: string, defaultValue: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
    setting(env, description, defaultValue, (raw) => {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`must be an integer, got "${raw}"`);
      const n = Number(raw);
      if (n < min || n > max) throw new Error(`must be between ${min} and ${max}, got ${n}`);
      return n;
    }),
  port: (env: string, description: string, defaultValue: number) =>
    setting(env, description, defaultValue, (raw) => {
      const n = Number(raw);
      if (!/^\d+$/.test(raw.trim()) || n > 65535) throw new Error(`must be a port 0-65535, got "${raw}"`);
      return n;
    }),
  bool: (env: string, description: string, defaultValue: boolean) =>
    setting(env, description, defaultValue, (raw) => {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new Error(`must be true or false, got "${raw}"`);
    }),
  oneOf: <T extends string>(env: string, description: string, defaultValue: T, allowed: readonly T[]) =>
    setting(env, description, defaultValue, (raw) => {
      if (!(allowed as readonly string[]).includes(raw)) {
        throw new Error(`must be one of ${allowed.join(', ')}, got "${raw}"`);
      }
      return raw as T;
    }),
  /** host:port; `defaultValue` may be undefined for an optional address. */
  /** host:port; the empty string means "none". */
  address: (env: string, description: string, defaultValue: string | undefined) =>
    setting<string | undefined>(env, description, defaultValue, (raw) => {
      if (raw.trim() === '') return undefined;
      parseHostPort(raw);
      return raw.trim();
    }),
};

/** Splits `host:port` (IPv6 as `[::1]:port`), validating both parts. */
export function parseHostPort(raw: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port < 1 || port > 65535)
    throw new Error(`must be host:port (e.g. 127.0.0.1:7000), got "${raw}"`);
  return { host: (m[1] ?? m[2]) as string, port };
}

/** Flags given as `--name value` or `--name=value`; a bare `--name` means "true". */
export function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        flags.set(arg.slice(2), next);
        i++;
      } else {
        flags.set(arg.slice(2), 'true');
      }
    }
  }
  return flags;
}

export function loadConfig<S extends ConfigSpec>(spec: S, sources: ConfigSources = {}): ConfigOf<S> {
  const env = sources.env ?? process.env;
  const flags = parseFlags(sources.argv ?? process.argv.slice(2));
  const known = new Set(Object.values(spec).map((s) => s.flag));
  for (const flag of flags.keys()) {
    if (!known.has(flag)) {
      throw new ConfigError(
        `unknown flag --${flag}; known flags: ${[...known].map((f) => `--${f}`).join(', ')}`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const fromFlag = flags.get(s.flag);
    const raw = fromFlag ?? env[s.env];
    if (raw === undefined) {
      out[key] = s.default;
      continue;
    }
    try {
      out[key] = s.parse(raw);
    } catch (err) {
      const where = fromFlag !== undefined ? `--${s.flag}` : s.env;
      throw new ConfigError(`invalid ${where} (${s.description}): ${(err as Error).message}`);
    }
  }
  return out as ConfigOf<S>;
}

/** A Markdown table of settings, for READMEs and `--help`. */
export function describeConfig(spec: ConfigSpec): string {
  const rows = Object.values(spec).map(
    (s) =>
      `| \`${s.env}\` | \`--${s.flag}\` | ${s.default === undefined ? '' : `\`${String(s.default)}\``} | ${s.description} |`,
  );
  return ['| env | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** Settings every service understands. Each service adds its own and sets its port's default. */
export function commonSettings(defaults: { port: number; service: string }) {
  return {
    host: settings.string('BACKPLANE_HOST', 'address to listen on', '127.0.0.1'),
    port: settings.port('BACKPLANE_PORT', 'port to listen on (0 = any free port)', defaults.port),
    advertiseHost: settings.optionalString(
      'BACKPLANE_ADVERTISE_HOST',
      'host other processes use to reach this one (published to the name server); default: the listen host',
    ),
    externalHost: settings.optionalString(
      'BACKPLANE_EXTERNAL_HOST',
      "host programs outside this service's network (the Docker host) dial, its ports published there under the same numbers; set, callers that did not dial the advertise host get addresses at this host (bindings, IBP capabilities, the ds data port, the sharing ring)",
    ),
    dataDir: settings.string(
      'BACKPLANE_DATA_DIR',
      'directory for embedded storage',
      `./data/${defaults.service}`,
    ),
    logLevel: settings.oneOf('BACKPLANE_LOG_LEVEL', 'pino log level', 'info', [
      'trace',
      'debug',
      'info',
      'warn',
      'error',
      'fatal',
      'silent',
    ] as const),
    nameServer: settings.address(
      'BACKPLANE_NAMESERVER',
      'the default name server (the seed\'s DNS at its well-known location); "" to not register',
      '127.0.0.1:7000',
    ),
    tlsCert: settings.optionalString(
      'BACKPLANE_TLS_CERT',
      'PEM certificate file; enables TLS with --tls-key',
    ),
    tlsKey: settings.optionalString('BACKPLANE_TLS_KEY', 'PEM private key file'),
    tlsCa: settings.optionalString(
      'BACKPLANE_TLS_CA',
      'PEM CA file; when set, clients must present certificates',
    ),
    clientTlsCa: settings.optionalString(
      'BACKPLANE_CLIENT_TLS_CA',
      "PEM CA file that signed the other services' certificates; set = this service's own calls to them (name server, parent name server, target depots) use TLS",
    ),
    clientTlsCert: settings.optionalString(
      'BACKPLANE_CLIENT_TLS_CERT',
      'PEM client certificate for those calls (mutual TLS), with --client-tls-key',
    ),
    clientTlsKey: settings.optionalString('BACKPLANE_CLIENT_TLS_KEY', 'PEM client key for those calls'),
    authToken: settings.optionalString(
      'BACKPLANE_AUTH_TOKEN',
      'when set, every call must carry "authorization: Bearer <token>" (health checks excepted)',
    ),
    maxCalls: settings.int(
      'BACKPLANE_MAX_CALLS',
      'calls in progress at once (waits and subscriptions included); more get RESOURCE_EXHAUSTED (OVERLOADED)',
      50_000,
      1,
      10_000_000,
    ),
    maxCallsPerClient: settings.int(
      'BACKPLANE_MAX_CALLS_PER_CLIENT',
      'calls in progress at once from one client address; more get RESOURCE_EXHAUSTED (TOO_MANY_CALLS)',
      10_000,
      1,
      10_000_000,
    ),
    maxStreamsPerConnection: settings.int(
      'BACKPLANE_MAX_STREAMS_PER_CONNECTION',
      'HTTP/2 streams one connection may have open; a client queues beyond it',
      2000,
      1,
      1_000_000,
    ),
    shutdownTimeoutMs: settings.int(
      'BACKPLANE_SHUTDOWN_TIMEOUT_MS',
      'how long SIGTERM waits for in-flight calls',
      5000,
      0,
      600_000,
    ),
  };
}
export type CommonConfig = ConfigOf<ReturnType<typeof commonSettings>>;

/** The start options every service takes from its common settings (listen address, TLS, auth, shutdown). */
export function serviceOptions(config: CommonConfig) {
  return {
    host: config.host,
    port: config.port,
    dataDir: config.dataDir,
    advertiseHost: config.advertiseHost,
    externalHost: config.externalHost,
    tls: { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa },
    authToken: config.authToken,
    /** How the service calls other services: client TLS settings and the same bearer token. */
    peer: peerAccess(
      { ca: config.clientTlsCa, cert: config.clientTlsCert, key: config.clientTlsKey },
      config.authToken,
    ),
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    limits: { maxCalls: config.maxCalls, maxCallsPerClient: config.maxCallsPerClient },
    maxStreamsPerConnection: config.maxStreamsPerConnection,
  };
}
