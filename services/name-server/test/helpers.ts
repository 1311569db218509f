import { join } from 'node:path';
import { NamingServiceClient } from '@backplane/proto/naming';
import { BackplaneError } from '@backplane/runtime';
import { memoryStore, startServiceBinary, tempDir } from '@backplane/runtime/testing';
import { credentials, type ServiceError } from '@grpc/grpc-js';

export function namingClient(address: string): NamingServiceClient {
  return new NamingServiceClient(address, credentials.createInsecure());
}

/** Sends raw bytes as the request of a unary method; resolves with the error (or undefined). */
export function rawCall(
  client: NamingServiceClient,
  method: string,
  body: Buffer,
): Promise<ServiceError | undefined> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/backplane.naming.v1.NamingService/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      (err) => resolve(err ?? undefined),
    );
  });
}

export async function expectCode(p: Promise<unknown>, code: number): Promise<BackplaneError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackplaneError);
  expect((err as BackplaneError).code).toBe(code);
  return err as BackplaneError;
}

export const MAIN = join(__dirname, '..', 'dist', 'main.js');

/** Starts the real name-server binary on a free port with its data in `dataDir`. */
export function startBinary(dataDir: string, port?: number, extraEnv: Record<string, string> = {}) {
  return startServiceBinary(MAIN, { dataDir, port, env: extraEnv, ready: /name server ready/ });
}

export { memoryStore, tempDir };
