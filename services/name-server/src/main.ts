#!/usr/bin/env node
import { runService } from '@backplane/runtime';
import { nameServerSettings } from './config';
import { startNameServer } from './embedded';

runService(nameServerSettings, 'name-server', async (config, log) => {
  const running = await startNameServer({
    host: config.host,
    port: config.port,
    dataDir: config.dataDir,
    advertiseHost: config.advertiseHost,
    parentNameServer: config.parentNameServer,
    parentScope: config.parentScope,
    leaseGraceMs: config.leaseGraceMs,
    log,
    tls: { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa },
    authToken: config.authToken,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  log.info(
    { dataDir: config.dataDir, parent: config.parentNameServer, ...running.registry.stats() },
    'name server ready',
  );
  return running;
});
