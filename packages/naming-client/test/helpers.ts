import { type RunningNameServer, startNameServer } from '@backplane/name-server';
import { EchoServiceService } from '@backplane/proto/echo';
import { type RunningService, type Store, service } from '@backplane/runtime';
import { startTestService } from '@backplane/runtime/testing';
import { MemoryLevel } from 'memory-level';

export const ECHO = 'backplane.echo.v1.EchoService';

export function memoryStore(): Store {
  return new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8' }) as unknown as Store;
}

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
