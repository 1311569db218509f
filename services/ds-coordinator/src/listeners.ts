import { readFileSync } from 'node:fs';
import { createServer, isIP, type Server, type ServerOpts, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Logger, TlsFiles } from '@backplane/runtime';
import type { Coordinator } from './coordinator';
import { adoptForReads, chunkReader, ReadBuffers, readHeaderChunks } from './read-buffers';

/**
 * Buffering per relayed socket before backpressure pauses its source. Node's 16 KiB default pauses and
 * resumes the client's socket for every 64 KiB read; 256 KiB keeps bulk transfers flowing (measured:
 * ~520 → ~650 MiB/s through the coordinator on loopback).
 */
export const RELAY_HIGH_WATER_MARK = 256 * 1024;

/** Bytes of a data connection's token. */
export const TOKEN_BYTES = 16;
/** How long a new connection may take to send its token or PROXY header. */
const HEADER_TIMEOUT_MS = 10_000;
/** The longest PROXY protocol v1 line (the spec's 107 bytes). */
const PROXY_V1_MAX = 107;

/**
 * Reads the first bytes of a connection: exactly `size` bytes, or (size < 0) one line up to -size bytes
 * ending in CRLF. Whatever follows stays in the socket for the relay. Resolves undefined on a timeout, an
 * early end or a line that is too long.
 */
export function readHeader(socket: Socket, size: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const finish = (value: Buffer | undefined, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(value);
    };
    const onEnd = () => finish(undefined);
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk; chunk = socket.read() as Buffer | null) {
        buffered = Buffer.concat([buffered, chunk]);
        if (size >= 0 && buffered.length >= size) {
          finish(buffered.subarray(0, size), buffered.subarray(size));
          return;
        }
        if (size < 0) {
          const eol = buffered.indexOf('\r\n');
          if (eol >= 0 && eol + 2 <= -size) {
            finish(buffered.subarray(0, eol), buffered.subarray(eol + 2));
            return;
          }
          if (buffered.length >= -size) {
            finish(undefined);
            return;
          }
        }
      }
    };
    const timer = setTimeout(() => finish(undefined), HEADER_TIMEOUT_MS);
    timer.unref();
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    onReadable();
  });
}

/**
 * The client's address from a PROXY protocol v1 line (`PROXY TCP4|TCP6 <src> <dst> <sport> <dport>`), or
 * the connection's own address for `PROXY UNKNOWN`; undefined for anything else.
 */
export function parseProxyV1(line: string, own: string): string | undefined {
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') return undefined;
  if (parts[1] === 'UNKNOWN') return own;
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) return undefined;
  const address = parts[2] as string;
  return isIP(address) === (parts[1] === 'TCP4' ? 4 : 6) ? address : undefined;
}

export interface Listeners {
  /** name → host:port clients dial. */
  services: Map<string, string>;
  dataAddress: string;
  /** Whether the data listener speaks TLS (nodes learn it when they attach). */
  dataTls: boolean;
  close(): Promise<void>;
}

/** How long a TLS connection may take to finish its handshake. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** TLS server options from the coordinator's certificate, key and (for mutual TLS) CA. */
function tlsOptions(tls: TlsFiles): TlsOptions {
  if (!tls.cert || !tls.key) throw new Error('TLS needs both a certificate and a key');
  const ca = tls.ca ? readFileSync(tls.ca) : undefined;
  return {
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ca,
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  };
}

/**
 * A TCP listener, or with `tls` a TLS one; `onConnection` gets the (decrypted) socket once it is ready.
 * A TLS socket cannot be paused before its handshake, so it starts flowing only when read.
 */
function relayServer(
  options: ServerOpts,
  tls: TlsOptions | undefined,
  onConnection: (s: Socket) => void,
): Server {
  if (!tls) return createServer(options, onConnection);
  const { pauseOnConnect: _paused, ...rest } = options;
  const server = createTlsServer({ ...rest, ...tls }, onConnection);
  server.on('tlsClientError', () => undefined); // a failed handshake only costs that connection
  return server;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Opens the TCP side: one listener per service (its clients' distributed-server address) and the data
 * listener nodes dial. Connections go to the coordinator once their header (PROXY line or token) is read.
 */
export async function openListeners(
  coordinator: Coordinator,
  options: {
    services: Map<string, { host: string; port: number }>;
    dataHost: string;
    dataPort: number;
    /** The host nodes dial for data (default: the data listen host). */
    advertiseHost?: string;
    proxyProtocol: boolean;
    /** The coordinator's certificate: set = the data listener speaks TLS. */
    tls?: TlsFiles;
    /** The service listeners (clients' addresses) speak TLS too. */
    serviceTls?: boolean;
    log: Logger;
  },
): Promise<Listeners> {
  const tls = options.tls?.cert || options.tls?.key ? tlsOptions(options.tls) : undefined;
  if (options.serviceTls && !tls)
    throw new Error("TLS on the service listeners needs the coordinator's certificate and key");
  if (options.serviceTls && options.proxyProtocol)
    throw new Error(
      'the PROXY protocol and TLS on the service listeners cannot be combined: terminate TLS at the proxy',
    );
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const services = new Map<string, string>();
  const buffers = new ReadBuffers();
  try {
    for (const [name, at] of options.services) {
      const server = relayServer(
        { highWaterMark: RELAY_HIGH_WATER_MARK, allowHalfOpen: true, pauseOnConnect: true },
        options.serviceTls ? tls : undefined,
        (accepted) => {
          // a plain connection's bytes are read into reused buffers (a PROXY header is read first the usual way)
          const socket =
            options.proxyProtocol || options.serviceTls
              ? accepted
              : adoptForReads(accepted, buffers, RELAY_HIGH_WATER_MARK);
          track(socket);
          socket.on('error', () => {});
          const own = socket.remoteAddress ?? '::';
          if (!options.proxyProtocol) {
            coordinator.acceptClient(name, socket, own);
            return;
          }
          void readHeader(socket, -PROXY_V1_MAX).then((line) => {
            const address = line ? parseProxyV1(line.toString('latin1'), own) : undefined;
            if (address === undefined) {
              options.log.info({ peer: own }, 'dropped a connection without a valid PROXY v1 header');
              socket.destroy();
              return;
            }
            socket.pause();
            coordinator.acceptClient(name, socket, address);
          });
        },
      );
      servers.push(server);
      const port = await listen(server, at.host, at.port);
      services.set(name, hostPort(options.advertiseHost ?? at.host, port));
    }
    const data = relayServer(
      { highWaterMark: RELAY_HIGH_WATER_MARK, allowHalfOpen: true, pauseOnConnect: true, noDelay: true },
      tls,
      (accepted) => {
        // a plain data connection's bytes (the node's output) are read into reused buffers too
        const socket = tls ? accepted : adoptForReads(accepted, buffers, RELAY_HIGH_WATER_MARK);
        track(socket);
        socket.on('error', () => {});
        const reader = chunkReader(socket);
        const header = reader
          ? readHeaderChunks(socket, reader, TOKEN_BYTES, HEADER_TIMEOUT_MS)
          : readHeader(socket, TOKEN_BYTES);
        void header.then((token) => {
          if (!token) {
            socket.destroy();
            return;
          }
          socket.pause();
          coordinator.acceptData(socket, token);
        });
      },
    );
    servers.push(data);
    const dataPort = await listen(data, options.dataHost, options.dataPort);
    return {
      services,
      dataAddress: hostPort(options.advertiseHost ?? options.dataHost, dataPort),
      dataTls: tls !== undefined,
      close: async () => {
        const closed = Promise.all(
          servers.map(
            (s) =>
              new Promise<void>((resolve) => {
                s.close(() => resolve());
              }),
          ),
        );
        for (const s of sockets) s.destroy();
        await closed;
      },
    };
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
}
