#!/usr/bin/env node
import { registerService } from '@backplane/naming-client';
import { runService } from '@backplane/runtime';
import { depotSettings } from './config';
import { startDepot } from './embedded';

runService(depotSettings, 'ibp-depot', async (config, log) => {
  const running = await startDepot({
    host: config.host,
    port: config.port,
    dataDir: config.dataDir,
    stableSizeMb: config.stableSizeMb,
    stableDir: config.stableDir || undefined,
    volatileSizeMb: config.volatileSizeMb,
    volatileDir: config.volatileDir || undefined,
    hostname: config.hostname || undefined,
    advertiseHost: config.advertiseHost,
    maxDurationSeconds: config.maxDurationSeconds,
    allowNetworks: config.allowNetworks,
    log,
    tls: { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa },
    authToken: config.authToken,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  await registerService(running, { name: 'ibp-depot', ...config, token: config.authToken, log });
  log.info({ dataDir: config.dataDir, ...running.depot.status() }, 'depot ready');
  return running;
});
