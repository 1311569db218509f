#!/usr/bin/env node
import { registerService } from '@backplane/naming-client';
import { runService, serviceOptions } from '@backplane/runtime';
import { sharingSettings } from './config';
import { startSharingServer } from './embedded';

runService(sharingSettings, 'sharing', async (config, log) => {
  const options = serviceOptions(config);
  const running = await startSharingServer({
    ...options,
    natsUrl: config.natsUrl || undefined,
    natsTls: { ca: config.natsTlsCa, cert: config.natsTlsCert, key: config.natsTlsKey },
    bucket: config.bucket,
    replicas: config.replicas,
    history: config.history,
    fsync: config.fsync,
    subjectPrefix: config.subjectPrefix,
    eventRetentionS: config.eventRetentionS,
    eventAckWaitS: config.eventAckWaitS,
    log,
  });
  await registerService(running, {
    name: 'sharing',
    ...config,
    token: config.authToken,
    credentials: options.peer.credentials,
    log,
  });
  log.info(
    {
      dataDir: config.natsUrl ? undefined : config.dataDir,
      engine: running.sharing.properties.kind,
      nats: config.natsUrl || undefined,
    },
    'sharing node ready',
  );
  return running;
});
