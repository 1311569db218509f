#!/usr/bin/env node
import { NamingServiceService } from '@backplane/proto/naming';
import {
  closeOnSignals,
  createLogger,
  loadConfig,
  openStore,
  runMain,
  serviceNameOf,
  startService,
} from '@backplane/runtime';
import { nameServerSettings } from './config';
import { ParentNameServer } from './parent';
import { Registry } from './registry';
import { namingService } from './server';

runMain(async () => {
  const config = loadConfig(nameServerSettings);
  const log = createLogger({ level: config.logLevel, service: 'name-server' });
  const store = await openStore(config.dataDir);
  const parent = config.parentNameServer
    ? new ParentNameServer(config.parentNameServer, config.parentScope)
    : undefined;
  const advertiseHost =
    config.advertiseHost ?? (config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host);
  const self = `${advertiseHost}:${config.port}`;
  const registry = await Registry.open({ store, leaseGraceMs: config.leaseGraceMs, parent, self, log });
  const running = await startService({
    name: 'name-server',
    services: [namingService(registry)],
    host: config.host,
    port: config.port,
    log,
    tls: { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa },
    authToken: config.authToken,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    onClose: [() => store.close(), () => registry.close(), () => parent?.close()],
  });
  await registry.publishSelf('name-server', [serviceNameOf(NamingServiceService as never)], {
    host: advertiseHost,
    port: running.port,
    metadata: {},
  });
  log.info(
    { dataDir: config.dataDir, parent: config.parentNameServer, ...registry.stats() },
    'name server ready',
  );
  closeOnSignals(running);
});
