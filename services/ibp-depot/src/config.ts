import { commonSettings, settings } from '@backplane/runtime';

export const DEFAULT_PORT = 6714;
const MB = 1024 * 1024;

/** ibp.cfg, as BACKPLANE_IBP_* settings (VOLSIZE/VOLDIR/STABLESIZE/STABLEDIR/HOSTNAME in the seed). */
export const depotSettings = {
  ...commonSettings({ port: DEFAULT_PORT, service: 'ibp-depot' }),
  stableSizeMb: settings.int(
    'BACKPLANE_IBP_STABLE_SIZE_MB',
    'capacity of the stable pool in MiB (STABLESIZE)',
    1024,
    0,
    1 << 30,
  ),
  stableDir: settings.string(
    'BACKPLANE_IBP_STABLE_DIR',
    'directory of stable areas (STABLEDIR); default <data dir>/stable',
    '',
  ),
  volatileSizeMb: settings.int(
    'BACKPLANE_IBP_VOLATILE_SIZE_MB',
    'capacity of the volatile pool in MiB (VOLSIZE)',
    256,
    0,
    1 << 30,
  ),
  volatileDir: settings.string(
    'BACKPLANE_IBP_VOLATILE_DIR',
    'directory of volatile areas (VOLDIR); default <data dir>/volatile',
    '',
  ),
  hostname: settings.string(
    'BACKPLANE_IBP_HOSTNAME',
    'host put in capabilities (HOSTNAME); default the advertise host',
    '',
  ),
  maxDurationSeconds: settings.int(
    'BACKPLANE_IBP_MAX_DURATION_S',
    'longest allowed duration from now, in seconds',
    30 * 24 * 3600,
    1,
    100 * 365 * 24 * 3600,
  ),
  allowNetworks: settings.string(
    'BACKPLANE_IBP_ALLOW_NETWORKS',
    'networks Deliver/RemoteStore may connect to (comma-separated CIDRs)',
    '127.0.0.0/8,::1/128',
  ),
};

export { MB };
