#!/usr/bin/env node
import { publish } from '@backplane/naming-client';
import { closeOnSignals, createLogger, loadConfig, runMain } from '@backplane/runtime';
import { depotSettings } from './config';
import { startDepot } from './embedded';

runMain(async () => {
  const config = loadConfig(depotSettings);
  const log = createLogger({ level: config.logLevel, service: 'ibp-depot' });
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
  if (config.nameServer) {
    const advertise = config.advertiseHost ?? (config.host === '0.0.0.0' ? '127.0.0.1' : config.host);
    const publication = await publish(
      { host: advertise, port: running.port },
      {
        name: 'ibp-depot',
        types: running.serviceNames,
        nameServer: config.nameServer,
        log,
        token: config.authToken,
      },
    ).catch((err: unknown) => {
      log.warn(
        { err: (err as Error).message, nameServer: config.nameServer },
        'could not register with the name server',
      );
      return undefined;
    });
    if (publication) running.addCloseHook(() => publication.close());
  }
  log.info({ dataDir: config.dataDir, ...running.depot.status() }, 'depot ready');
  closeOnSignals(running);
});
