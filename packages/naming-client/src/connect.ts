import { type ChannelCredentials, type ClientOptions, credentials } from '@grpc/grpc-js';
import { defaultNameServer } from './naming-client';
import { nameCache, type Resolved, registerNameResolver, targetFor } from './resolver';

export interface ConnectOptions {
  scope?: string;
  /** Fully-qualified service name the server must implement; a server of another type is refused. */
  expectedType?: string;
  /** Name server host:port; default $BACKPLANE_NAMESERVER or 127.0.0.1:7000. */
  nameServer?: string;
  /** Credentials for the resolved server (not the name server). */
  credentials?: ChannelCredentials;
  channelOptions?: Partial<ClientOptions>;
}

type ClientConstructor<C> = new (
  address: string,
  creds: ChannelCredentials,
  options?: Partial<ClientOptions>,
) => C;

function keyOf(name: string, options: ConnectOptions) {
  return {
    nameServer: options.nameServer ?? defaultNameServer(),
    scope: options.scope ?? '',
    name,
    expectedType: options.expectedType ?? '',
  };
}

/**
 * The seed's MYSERVER_CLIENT: a typed grpc-js client for the server published under `name`. The name is
 * resolved once (and shared with every other connect() to it); the client's channel then follows the
 * name, so when the server migrates, new calls go to the new location with nothing to do for the caller.
 * Fails with NOT_FOUND, or FAILED_PRECONDITION (TYPE_MISMATCH) when the server has the wrong type.
 */
export async function connect<C>(
  Client: ClientConstructor<C>,
  name: string,
  options: ConnectOptions = {},
): Promise<C> {
  registerNameResolver();
  const key = keyOf(name, options);
  const resolved = await nameCache.follow(key).get();
  if (!resolved.ok) throw resolved.error;
  return new Client(
    targetFor(key),
    options.credentials ?? credentials.createInsecure(),
    options.channelOptions,
  );
}

/** What `name` resolves to now, from the shared cache (one Resolve the first time, none after). */
export function lookup(
  name: string,
  options: Omit<ConnectOptions, 'credentials' | 'channelOptions'> = {},
): Promise<Resolved> {
  return nameCache.follow(keyOf(name, options)).get();
}
