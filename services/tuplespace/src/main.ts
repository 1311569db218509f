#!/usr/bin/env node
import { registerService } from '@backplane/naming-client';
import { runService, serviceOptions } from '@backplane/runtime';
import { tupleSpaceSettings } from './config';
import { startTupleSpaceServer } from './embedded';

runService(tupleSpaceSettings, 'tuplespace', async (config, log) => {
  // callers authenticate as tuple-space users (Basic); BACKPLANE_AUTH_TOKEN is only what this server
  // shows the name server when it registers
  const { authToken: _token, ...options } = serviceOptions(config);
  const running = await startTupleSpaceServer({
    ...options,
    adminUser: config.adminUser,
    adminPassword: config.adminPassword,
    pluginsDir: config.pluginsDir,
    waitMarginMs: config.waitMarginMs,
    log,
  });
  await registerService(running, {
    name: 'tuplespace',
    ...config,
    token: config.authToken,
    credentials: options.peer.credentials,
    log,
  });
  log.info({ dataDir: config.dataDir, ...running.spaces.stats() }, 'tuple space server ready');
  return running;
});
