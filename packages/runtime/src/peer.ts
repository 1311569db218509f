import { bearerMetadata } from '@backplane/client-core';
import { type ChannelCredentials, credentials, type Metadata } from '@grpc/grpc-js';
import { clientCredentials, type TlsFiles } from './tls';

/**
 * How a service calls other backplane services (its name server, a parent name server, a target depot):
 * plaintext, or TLS with the CA that signed their certificates (mutual TLS with a certificate and key),
 * and the deployment's bearer token when there is one.
 */
export interface PeerAccess {
  credentials: ChannelCredentials;
  /** Sent on every call to a peer (the bearer token), if any. */
  metadata?: Metadata;
}

export function peerAccess(tls: TlsFiles = {}, token?: string): PeerAccess {
  const useTls = Boolean(tls.ca || tls.cert || tls.key);
  if ((tls.cert && !tls.key) || (tls.key && !tls.cert))
    throw new Error('a client certificate for calls to other services needs both a certificate and a key');
  return {
    credentials: useTls ? clientCredentials(tls) : credentials.createInsecure(),
    metadata: token ? bearerMetadata(token) : undefined,
  };
}

/** Plaintext and no token: what tests and embedded set-ups use. */
export const PLAIN_PEER: PeerAccess = { credentials: credentials.createInsecure() };
