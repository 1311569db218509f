import { ConfigError, commonSettings, settings } from '@backplane/runtime';

export const DEFAULT_PORT = 7400;
export const DEFAULT_DATA_PORT = 7401;
export const DEFAULT_SERVICE_PORT = 7410;

/**
 * `name=[host:]port,…` → the services and the address each one's clients dial. The host defaults to the
 * coordinator's listen host.
 */
export function parseServices(raw: string, defaultHost: string): Map<string, { host: string; port: number }> {
  const out = new Map<string, { host: string; port: number }>();
  for (const item of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9_.-]{1,128})=(?:(.*):)?(\d{1,5})$/.exec(item);
    const port = m ? Number(m[3]) : Number.NaN;
    if (!m || port > 65535) {
      throw new ConfigError(
        `invalid BACKPLANE_DS_SERVICES entry "${item}": expected name=[host:]port, e.g. default=7410`,
      );
    }
    const host = (m[2] ?? '').replace(/^\[(.*)\]$/, '$1') || defaultHost;
    out.set(m[1] as string, { host, port });
  }
  if (out.size === 0) throw new ConfigError('BACKPLANE_DS_SERVICES names no service');
  return out;
}

export const dsSettings = {
  ...commonSettings({ port: DEFAULT_PORT, service: 'ds-coordinator' }),
  services: settings.string(
    'BACKPLANE_DS_SERVICES',
    'the distributed services: name=[host:]port of the address their clients dial, comma-separated',
    `default=${DEFAULT_SERVICE_PORT}`,
  ),
  dataPort: settings.port(
    'BACKPLANE_DS_DATA_PORT',
    'port nodes dial for the data connections of client streams (0 = any free port)',
    DEFAULT_DATA_PORT,
  ),
  defaultPolicy: settings.oneOf(
    'BACKPLANE_DS_DEFAULT_POLICY',
    "the contact node's choice for a client that is not bound",
    'least-clients',
    ['least-clients', 'round-robin'] as const,
  ),
  bindingWaitMs: settings.int(
    'BACKPLANE_DS_BINDING_WAIT_MS',
    "how long a bound client's new connection waits for its detached node before the default choice",
    5000,
    0,
    3_600_000,
  ),
  bindingTtlS: settings.int(
    'BACKPLANE_DS_BINDING_TTL_S',
    'a client with no connection for this many seconds is forgotten: its binding is dropped (0 = never)',
    86_400,
    0,
    315_360_000,
  ),
  pendingTimeoutMs: settings.int(
    'BACKPLANE_DS_PENDING_TIMEOUT_MS',
    'how long a connection waits for any node of its service before it is closed',
    30_000,
    0,
    3_600_000,
  ),
  maxConnectionsPerClient: settings.int(
    'BACKPLANE_DS_MAX_CONNECTIONS_PER_CLIENT',
    'connections one client (source address) may hold per service; more are closed at once',
    1000,
    1,
    1_000_000,
  ),
  proxyProtocol: settings.bool(
    'BACKPLANE_DS_PROXY_PROTOCOL',
    'client connections start with a PROXY protocol v1 line (behind a load balancer); the client is its source',
    false,
  ),
  serviceTls: settings.bool(
    'BACKPLANE_DS_SERVICE_TLS',
    "the service listeners (the clients' addresses) speak TLS with BACKPLANE_TLS_CERT/KEY; the data listener does whenever those are set",
    false,
  ),
};
