#!/usr/bin/env node
import { registerService } from '@backplane/naming-client';
import { hasRelayMallocEnv, RELAY_MALLOC_ENV, runService, serviceOptions } from '@backplane/runtime';
import { dsSettings, parseServices } from './config';
import { startDsCoordinator } from './embedded';

runService(
  dsSettings,
  'ds-coordinator',
  async (config, log) => {
    const options = serviceOptions(config);
    const running = await startDsCoordinator({
      ...options,
      services: parseServices(config.services, config.host),
      dataPort: config.dataPort,
      defaultPolicy: config.defaultPolicy,
      bindingWaitMs: config.bindingWaitMs,
      bindingTtlMs: config.bindingTtlS * 1000,
      pendingTimeoutMs: config.pendingTimeoutMs,
      maxConnectionsPerClient: config.maxConnectionsPerClient,
      proxyProtocol: config.proxyProtocol,
      serviceTls: config.serviceTls,
      log,
    });
    await registerService(running, {
      name: 'ds-coordinator',
      ...config,
      token: config.authToken,
      credentials: options.peer.credentials,
      log,
    });
    if (!hasRelayMallocEnv())
      log.warn(
        { set: RELAY_MALLOC_ENV },
        'started without the relay malloc setting: bulk relaying costs up to 3x the CPU (backplane up and the container set it)',
      );
    log.info(
      { services: Object.fromEntries(running.services), data: running.dataAddress, dataDir: config.dataDir },
      'ds coordinator ready',
    );
    return running;
  },
  { heapGrowingPercent: 0 },
); // a relay allocates a Buffer per socket read: V8's default growth suits it
