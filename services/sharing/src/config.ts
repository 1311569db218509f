import { commonSettings, settings } from '@backplane/runtime';

export const DEFAULT_PORT = 8400;

export const sharingSettings = {
  ...commonSettings({ port: DEFAULT_PORT, service: 'sharing' }),
  natsUrl: settings.string(
    'BACKPLANE_NATS_URL',
    'NATS server(s), comma-separated; set = the distributed engine (JetStream KV + NATS subjects), empty = embedded',
    '',
  ),
  natsTlsCa: settings.optionalString(
    'BACKPLANE_NATS_TLS_CA',
    "PEM CA file that signed the NATS servers' certificates; set = connect to NATS over TLS",
  ),
  natsTlsCert: settings.optionalString(
    'BACKPLANE_NATS_TLS_CERT',
    'PEM client certificate for NATS servers that verify clients, with --nats-tls-key',
  ),
  natsTlsKey: settings.optionalString('BACKPLANE_NATS_TLS_KEY', 'PEM client key for NATS'),
  bucket: settings.string(
    'BACKPLANE_SHARING_BUCKET',
    "the properties' log on NATS (stream BP_<name>, snapshots BP_<name>_snap, the ring in <name>-nodes)",
    'backplane-sharing',
  ),
  replicas: settings.int(
    'BACKPLANE_SHARING_REPLICAS',
    'replicas of the log stream when it is created (1, or 3 on a cluster)',
    1,
    1,
    5,
  ),
  history: settings.int(
    'BACKPLANE_SHARING_HISTORY',
    'changes kept for watches that resume from a revision (both engines)',
    100_000,
    1,
    10_000_000,
  ),
  subjectPrefix: settings.string(
    'BACKPLANE_SHARING_SUBJECT_PREFIX',
    'NATS subject prefix of SharedEvents topics',
    'backplane.events',
  ),
  fsync: settings.bool(
    'BACKPLANE_SHARING_FSYNC',
    'embedded engine: fsync every group commit of the log (acknowledged writes survive a power loss); false: they survive kill -9 only',
    true,
  ),
  eventRetentionS: settings.int(
    'BACKPLANE_SHARING_EVENT_RETENTION_S',
    'NATS engine: keep SharedEvents this long (stream BP_<bucket>_events) and offer durable subscriptions; 0 = off (set the same on every node)',
    0,
    0,
    365 * 24 * 3600,
  ),
  eventAckWaitS: settings.int(
    'BACKPLANE_SHARING_EVENT_ACK_WAIT_S',
    'durable subscriptions: an event not acknowledged this long after delivery is delivered again',
    30,
    1,
    3600,
  ),
};
