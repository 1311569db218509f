export { healthCheck, reflectionListServices } from '../probes';
export { memoryStore } from './memory-store';
export type { NatsCluster, NatsServer } from './nats';
export { natsServerBinary, startNats, startNatsCluster } from './nats';
export { freePort, tempDir, waitFor } from './ports';
export type { SpawnedProcess } from './processes';
export { spawnProcess } from './processes';
export { startTestService } from './service';
