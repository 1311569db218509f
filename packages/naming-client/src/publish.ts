import { BackplaneError, type ClientLogger, SILENT_LOGGER } from '@backplane/client-core';
import type { Binding, Location } from '@backplane/proto/naming';
import { NamingClient, type NamingClientOptions } from './naming-client';

export interface PublishOptions extends NamingClientOptions {
  name: string;
  scope?: string;
  /** Fully-qualified service names the server implements. */
  types?: string[];
  /** Lease length; the lease is renewed every third of it. Default 10 s. */
  leaseTtlMs?: number;
  metadata?: Record<string, string>;
  log?: ClientLogger;
  /** Called when the publication is lost for good (e.g. another server took the name). */
  onError?: (err: BackplaneError) => void;
}

/** A server published under a name: kept alive until close(). */
export interface Publication {
  readonly name: string;
  readonly scope: string;
  addressId(): string;
  binding(): Binding | undefined;
  /** Moves the server: every name bound to its address follows. */
  migrate(location: { host: string; port: number; metadata?: Record<string, string> }): Promise<void>;
  /** Stops renewing and unbinds (the seed's destructor of SERVER). */
  close(): Promise<void>;
}

/**
 * Publishes a server under a name (the seed's SERVER constructor): binds it, renews its lease, binds it
 * again if the name server lost it (restart without its data, or an expired lease after a pause), and
 * unbinds it on close().
 */
export async function publish(
  server: { host: string; port: number },
  options: PublishOptions,
): Promise<Publication> {
  const client = new NamingClient(options);
  const log = options.log ?? SILENT_LOGGER;
  const scope = options.scope ?? '';
  const leaseTtlMs = options.leaseTtlMs ?? 10_000;
  let location: Location = { host: server.host, port: server.port, metadata: options.metadata ?? {} };
  let addressId = '';
  let ownerSecret = '';
  let binding: Binding | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const bind = async () => {
    const res = await client.bind(
      options.name,
      location,
      { scope, types: options.types ?? [], leaseTtlMs },
      { timeoutMs: 5000 },
    );
    addressId = res.addressId;
    ownerSecret = res.ownerSecret;
    binding = res.binding;
  };

  const renew = async () => {
    try {
      await client.keepAlive(addressId, ownerSecret, { timeoutMs: Math.max(1000, leaseTtlMs / 3) });
    } catch (err) {
      const e = BackplaneError.from(err);
      if (e.reason === 'NOT_FOUND') {
        log.warn({ name: options.name }, 'publication lost by the name server; binding again');
        try {
          await bind();
        } catch (bindErr) {
          const be = BackplaneError.from(bindErr);
          log.error({ err: be, name: options.name }, 'could not publish again');
          if (be.reason === 'ALREADY_EXISTS') options.onError?.(be);
        }
      } else {
        log.warn({ err: e.message, name: options.name }, 'lease renewal failed; retrying');
      }
    }
  };

  let renewing: Promise<void> | undefined;
  const schedule = () => {
    if (closed || leaseTtlMs === 0) return;
    timer = setTimeout(
      () => {
        renewing = renew().finally(() => {
          renewing = undefined;
          schedule();
        });
      },
      Math.max(100, Math.floor(leaseTtlMs / 3)),
    );
    timer.unref();
  };

  try {
    await bind();
  } catch (err) {
    client.close();
    throw err;
  }
  schedule();

  return {
    name: options.name,
    scope,
    addressId: () => addressId,
    binding: () => binding,
    async migrate(to) {
      location = { host: to.host, port: to.port, metadata: to.metadata ?? location.metadata };
      const moved = await client.migrate(addressId, ownerSecret, location, { timeoutMs: 5000 });
      binding = moved.find((b) => b.name === options.name && (b.scope === scope || scope === '')) ?? binding;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      // a renewal in flight may bind again (with a new secret): let it finish, then unbind what it left
      await renewing;
      try {
        await client.unbind(options.name, ownerSecret, scope, { timeoutMs: 3000 });
      } catch (err) {
        log.warn({ err: BackplaneError.from(err).message, name: options.name }, 'unbind on close failed');
      } finally {
        client.close();
      }
    },
  };
}
