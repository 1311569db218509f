import { BackplaneError, type ClientLogger, EXTERNAL_ADDRESS_KEY } from '@backplane/client-core';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { publish } from './publish';

/**
 * Publishes a running service under its name in the default name server (when one is configured) and
 * unbinds it when the service closes. A name server that cannot be reached is logged, not fatal: the
 * service works without one.
 */
export async function registerService(
  running: { port: number; serviceNames: string[]; addShutdownHook(hook: () => unknown): void },
  options: {
    name: string;
    nameServer: string | undefined;
    host: string;
    advertiseHost?: string | undefined;
    /** The host programs outside the service's network dial (its port published there): location metadata `external`. */
    externalHost?: string | undefined;
    token?: string | undefined;
    /** TLS for the call to the name server (the service's client TLS settings); default plaintext. */
    credentials?: ChannelCredentials | undefined;
    log: ClientLogger;
  },
): Promise<void> {
  if (!options.nameServer) return;
  const host =
    options.advertiseHost ??
    (options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host);
  try {
    const publication = await publish(
      { host, port: running.port },
      {
        name: options.name,
        types: running.serviceNames,
        nameServer: options.nameServer,
        log: options.log,
        token: options.token,
        credentials: options.credentials,
        metadata: options.externalHost
          ? { [EXTERNAL_ADDRESS_KEY]: `${options.externalHost}:${running.port}` }
          : undefined,
      },
    );
    // leave the name server as soon as shutdown starts, not after draining: no new clients are sent here
    running.addShutdownHook(() => publication.close());
  } catch (err) {
    options.log.warn(
      { err: BackplaneError.from(err).message, nameServer: options.nameServer },
      'could not register with the name server',
    );
  }
}
