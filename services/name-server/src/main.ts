#!/usr/bin/env node
import { runService, serviceOptions } from '@backplane/runtime';
import { nameServerSettings } from './config';
import { startNameServer } from './embedded';

runService(nameServerSettings, 'name-server', async (config, log) => {
  const running = await startNameServer({
    ...serviceOptions(config),
    parentNameServer: config.parentNameServer,
    parentScope: config.parentScope,
    leaseGraceMs: config.leaseGraceMs,
    log,
  });

  log.info(
    { dataDir: config.dataDir, parent: config.parentNameServer, ...running.registry.stats() },
    'name server ready',
  );
  return running;
});
