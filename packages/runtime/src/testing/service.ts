import { createLogger, silentLogger } from '../logger';
import { type RunningService, type StartServiceOptions, startService } from '../server';

/** startService on 127.0.0.1 and a free port, logging nothing unless BACKPLANE_TEST_LOG is set. */
export function startTestService(
  options: Omit<StartServiceOptions, 'host' | 'port'> & { port?: number },
): Promise<RunningService> {
  return startService({
    log: process.env.BACKPLANE_TEST_LOG
      ? createLogger({ level: process.env.BACKPLANE_TEST_LOG })
      : silentLogger(),
    shutdownTimeoutMs: 2000,
    ...options,
    host: '127.0.0.1',
    port: options.port ?? 0,
  });
}
