import { commonSettings, settings } from '@backplane/runtime';

export const DEFAULT_PORT = 7000;

export const nameServerSettings = {
  ...commonSettings({ port: DEFAULT_PORT, service: 'name-server' }),
  parentNameServer: settings.address(
    'BACKPLANE_PARENT_NAMESERVER',
    'a parent name server (host:port) that lookups missing here are delegated to',
    undefined,
  ),
  parentScope: settings.string('BACKPLANE_PARENT_SCOPE', 'the scope used at the parent name server', ''),
  leaseGraceMs: settings.int(
    'BACKPLANE_LEASE_GRACE_MS',
    'after a restart, how long leases stay valid for their servers to renew',
    15_000,
    0,
    3_600_000,
  ),
};
