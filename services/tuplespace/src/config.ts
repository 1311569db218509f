import { commonSettings, settings } from '@backplane/runtime';

/** TSpaces' TupleSpace.DEFAULTPORT. */
export const DEFAULT_PORT = 8200;

export const tupleSpaceSettings = {
  ...commonSettings({ port: DEFAULT_PORT, service: 'tuplespace' }),
  adminUser: settings.string('BACKPLANE_TS_ADMIN_USER', 'the server admin created on first start', 'admin'),
  adminPassword: settings.string(
    'BACKPLANE_TS_ADMIN_PASSWORD',
    "the admin's password on first start; empty = generated into <data dir>/admin-password",
    '',
  ),
  waitMarginMs: settings.int(
    'BACKPLANE_TS_WAIT_MARGIN_MS',
    "WaitToTake hands no tuple over this close to the caller's deadline, so the answer can reach it",
    100,
    0,
    60_000,
  ),
  pluginsDir: settings.string(
    'BACKPLANE_TS_PLUGINS_DIR',
    'directory of factory/handler modules AddFactory/AddHandler may load by name',
    '',
  ),
};
