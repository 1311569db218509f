export { natsServerBinary, startNats, startNatsCluster } from './nats';
export { freePort, tempDir, waitFor } from './ports';
export { spawnProcess } from './processes';
export { startTestService } from './service';

export type { NatsCluster, NatsServer } from './nats';
export type { SpawnedProcess } from './processes';
export { healthCheck, reflectionListServices } from './probes';
