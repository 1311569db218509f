import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';

export interface TlsFiles {
  /** PEM certificate (chain) file. */
  cert?: string | undefined;
  /** PEM private key file. */
  key?: string | undefined;
  /** PEM CA file: on a server, clients must then present a certificate it signed. */
  ca?: string | undefined;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read TLS ${what} file ${path}: ${(err as Error).message}`);
  }
}

/** Insecure credentials when no cert/key is given, TLS (and mutual TLS with a CA) otherwise. */
export function serverCredentials(tls: TlsFiles = {}): ServerCredentials {
  if (!tls.cert && !tls.key) return ServerCredentials.createInsecure();
  if (!tls.cert || !tls.key) throw new Error('TLS needs both a certificate and a key');
  const ca = tls.ca ? read(tls.ca, 'CA') : null;
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: read(tls.cert, 'certificate'), private_key: read(tls.key, 'key') }],
    ca !== null,
  );
}

/** Client credentials: insecure, TLS with a CA, or mutual TLS with a CA, cert and key. */
export function clientCredentials(tls?: TlsFiles | boolean): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  return credentials.createSsl(
    tls.ca ? read(tls.ca, 'CA') : null,
    tls.key ? read(tls.key, 'key') : null,
    tls.cert ? read(tls.cert, 'certificate') : null,
  );
}
