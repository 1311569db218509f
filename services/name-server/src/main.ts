#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig, runMain } from '@backplane/runtime';
import { nameServerSettings } from './config';
import { startNameServer } from './embedded';

runMain(async () => {
  const config = loadConfig(nameServerSettings);
  const log = createLogger({ level: config.logLevel, service: 'name-server' });
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
  closeOnSignals(running);
});
