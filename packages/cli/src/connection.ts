import { bearerMetadata, clientCredentials } from '@backplane/runtime';
import type { ChannelCredentials, Metadata } from '@grpc/grpc-js';
import type { Command } from 'commander';

/** The options every client subcommand takes for how it connects: TLS and a bearer token. */
export interface ConnectionFlags {
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Adds --token, --tls, --tls-ca, --tls-cert and --tls-key (each with its environment default). */
export function withConnection(cmd: Command, token = true): Command {
  if (token) cmd.option('--token <token>', 'bearer token (default $BACKPLANE_AUTH_TOKEN)');
  return cmd
    .option('--tls', 'connect with TLS, trusting the system CAs (implied by --tls-ca)')
    .option(
      '--tls-ca <file>',
      'PEM CA file that signed the server certificate (default $BACKPLANE_CLIENT_TLS_CA)',
    )
    .option(
      '--tls-cert <file>',
      'PEM client certificate, for mutual TLS (default $BACKPLANE_CLIENT_TLS_CERT)',
    )
    .option('--tls-key <file>', 'PEM client key, for mutual TLS (default $BACKPLANE_CLIENT_TLS_KEY)');
}

/** Insecure, TLS with the system CAs, or TLS (and mutual TLS) with the given files. */
export function credentialsFrom(o: ConnectionFlags): ChannelCredentials {
  const ca = o.tlsCa ?? process.env.BACKPLANE_CLIENT_TLS_CA;
  const cert = o.tlsCert ?? process.env.BACKPLANE_CLIENT_TLS_CERT;
  const key = o.tlsKey ?? process.env.BACKPLANE_CLIENT_TLS_KEY;
  if (ca || cert || key) return clientCredentials({ ca, cert, key });
  return clientCredentials(Boolean(o.tls));
}

export function tokenFrom(o: ConnectionFlags): string | undefined {
  return o.token ?? process.env.BACKPLANE_AUTH_TOKEN;
}

export function metadataFrom(o: ConnectionFlags): Metadata | undefined {
  const token = tokenFrom(o);
  return token ? bearerMetadata(token) : undefined;
}
