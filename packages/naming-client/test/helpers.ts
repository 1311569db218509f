import { type RunningNameServer, startNameServer } from '@backplane/name-server';
import { EchoServiceService } from '@backplane/proto/echo';
import { type RunningService, service } from '@backplane/runtime';
import { memoryStore, startTestService } from '@backplane/runtime/testing';

export { memoryStore };

export const ECHO = 'backplane.echo.v1.EchoService';

export function startTestNameServer(): Promise<RunningNameServer> {
  return startNameServer({ port: 0, store: memoryStore(), shutdownTimeoutMs: 1000 });
}

/** An echo server that prefixes every answer with its own label, so a test can tell servers apart. */
export function startLabelledEcho(label: string): Promise<RunningService> {
  return startTestService({
    name: `echo-${label}`,
    services: [
      service(EchoServiceService, {
        echo: async (req) => ({ payload: Buffer.concat([Buffer.from(`${label}:`), req.payload]) }),
      }),
    ],
  });
}
