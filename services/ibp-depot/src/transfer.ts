import { lookup } from 'node:dns/promises';
import { BlockList, connect, isIP, type Socket } from 'node:net';
import { FastDepotServiceClient, type StoreResponse } from '@backplane/proto/ibp';
import { BackplaneError, type PeerAccess, PLAIN_PEER } from '@backplane/runtime';
import { Metadata } from '@grpc/grpc-js';
import { parseCapability } from './capability';
import type { Depot } from './depot';

/** Networks Deliver and RemoteStore may connect to, so a depot is not an open relay. */
export function allowList(cidrs: string): BlockList {
  const list = new BlockList();
  for (const raw of cidrs
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean)) {
    const [net, bits] = raw.split('/');
    const type = isIP(net ?? '');
    if (!type || bits === undefined || !/^\d+$/.test(bits)) throw new Error(`not a CIDR network: "${raw}"`);
    list.addSubnet(net as string, Number(bits), type === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

async function permittedAddress(host: string, port: number, allowed: BlockList): Promise<string> {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw BackplaneError.badParameter(`port must be 1-65535, got ${port}`);
  if (host === '' || host.length > 253)
    throw BackplaneError.badParameter('host must be a host name or IP address');
  // every address the name has must be allowed, and the caller connects to the address checked here (not
  // to the name again), so neither a second record nor a re-resolution can point the depot elsewhere
  const addresses = isIP(host)
    ? [host]
    : ((await lookup(host, { all: true }).catch(() => [])) as Array<{ address: string }>).map(
        (a) => a.address,
      );
  if (addresses.length === 0) throw BackplaneError.badParameter(`cannot resolve host "${host}"`);
  for (const address of addresses) {
    if (!allowed.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')) {
      throw BackplaneError.permissionDenied(`${address} is outside the networks this depot may connect to`);
    }
  }
  return addresses[0] as string;
}

function dial(address: string, port: number, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port });
    const onAbort = () => socket.destroy(signal?.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => resolve(socket));
    // rejects only while connecting; later errors surface through write()/finish() and close the socket
    socket.on('error', (err) =>
      reject(BackplaneError.unavailable(`cannot connect to ${address}:${port}: ${err.message}`)),
    );
    socket.once('close', () => signal?.removeEventListener('abort', onAbort));
  });
}

/** Connects to host:port (if the allow-list permits it), runs `use`, and always closes the socket. */
async function withConnection<T>(
  host: string,
  port: number,
  allowed: BlockList,
  signal: AbortSignal | undefined,
  use: (socket: Socket) => Promise<T>,
): Promise<T> {
  const address = await permittedAddress(host, port, allowed);
  const socket = await dial(address, port, signal);
  try {
    return await use(socket);
  } finally {
    socket.destroy();
  }
}

const gone = () => BackplaneError.unavailable('delivery failed: the receiver closed the connection');

/** Writes a chunk, waiting for room; fails at once when the receiver has gone (reset, closed or errored). */
function write(socket: Socket, chunk: Buffer): Promise<void> {
  if (socket.destroyed) return Promise.reject(gone());
  if (socket.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(gone());
    socket.once('drain', onDrain);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}

/** Half-closes and resolves once the receiver got everything; rejects if it went away first. */
function finish(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.reject(gone());
  return new Promise((resolve, reject) => {
    socket.once('error', () => reject(gone()));
    socket.end((err?: Error | null) => (err ? reject(gone()) : resolve()));
  });
}

/** IBP_deliver: connects to a waiting listener and sends the bytes; FIFO data is consumed once sent. */
export async function deliver(
  depot: Depot,
  readCap: string,
  host: string,
  port: number,
  offset: number,
  size: number,
  allowed: BlockList,
  signal?: AbortSignal,
): Promise<number> {
  depot.check(readCap, 'READ', 'read_cap');
  return withConnection(host, port, allowed, signal, async (socket) => {
    let sent = 0;
    const finished = () => finish(socket);
    for await (const chunk of depot.read(readCap, offset, size, signal, { beforeConsume: finished })) {
      await write(socket, chunk);
      sent += chunk.length;
    }
    if (!socket.writableEnded) await finished();
    return sent;
  });
}

/** The bytes of a socket, exactly `size` of them; fewer is an error. */
async function* exactly(socket: Socket, size: number): AsyncGenerator<Buffer> {
  let got = 0;
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    const take = Math.min(chunk.length, size - got);
    if (take > 0) yield chunk.subarray(0, take);
    got += take;
    if (got >= size) return;
  }
  if (got < size)
    throw BackplaneError.unavailable(`the peer closed the connection after ${got} of ${size} bytes`);
}

/** IBP_remote_store: connects to host:port and stores exactly `size` bytes read from it. */
export async function remoteStore(
  depot: Depot,
  writeCap: string,
  host: string,
  port: number,
  size: number,
  allowed: BlockList,
  signal?: AbortSignal,
): Promise<number> {
  depot.check(writeCap, 'WRITE', 'write_cap');
  return withConnection(host, port, allowed, signal, async (socket) => {
    const r = await depot.store(
      writeCap,
      size,
      size === 0 ? (async function* () {})() : exactly(socket, size),
      signal,
    );
    return r.stored;
  });
}

/**
 * IBP_copy: a third-party transfer. This depot reads the source area and streams it straight into a Store
 * call on the target depot named by the write capability; the bytes never pass through the caller.
 */
export async function copy(
  depot: Depot,
  sourceReadCap: string,
  targetWriteCap: string,
  offset: number,
  size: number,
  allowed: BlockList,
  signal?: AbortSignal,
  peer: PeerAccess = PLAIN_PEER,
): Promise<number> {
  const target = parseCapability(targetWriteCap, 'target_write_cap');
  if (target.kind !== 'WRITE') {
    throw BackplaneError.of(
      'INCORRECT_STATE',
      `target_write_cap must be a WRITE capability, got ${target.kind}`,
      {
        reason: 'IBP_E_WRONG_CAP_TYPE',
      },
    );
  }
  // the target depot is named by the capability: it must be inside the allowed networks like any peer
  const ip = await permittedAddress(target.host, target.port, allowed);
  const bracket = (h: string) => (h.includes(':') ? `[${h}]` : h);
  const client = new FastDepotServiceClient(`${bracket(ip)}:${target.port}`, peer.credentials, {
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
    // TLS and virtual hosting still see the name the capability gave
    'grpc.default_authority': `${bracket(target.host)}:${target.port}`,
  });
  let settle: (r: StoreResponse) => void = () => undefined;
  let fail: (e: unknown) => void = () => undefined;
  const response = new Promise<StoreResponse>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  // observed here: the target may refuse before this side has sent everything
  let refused: unknown;
  response.catch((err: unknown) => {
    refused = err;
  });
  const call = client.store(
    peer.metadata ?? new Metadata(),
    { deadline: new Date(Date.now() + 3_600_000) },
    (err, res) => (err ? fail(BackplaneError.from(err)) : settle(res)),
  );
  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let length = -1;
  let first = true;
  const send = async (data: Buffer) => {
    if (refused !== undefined) throw refused;
    const msg = first ? { writeCap: targetWriteCap, size: length, data } : { writeCap: '', size: 0, data };
    first = false;
    if (call.write(msg)) return;
    // wait for room, or for the target's answer if it refuses (then no drain ever comes)
    await Promise.race([new Promise<void>((resolve) => call.once('drain', () => resolve())), response]);
  };
  try {
    const chunks = depot.read(sourceReadCap, offset, size, signal, {
      onLength: (n) => {
        length = n;
      },
      beforeConsume: async () => {
        // an empty queue still sends the one message that names the target (a Store of 0 bytes)
        if (first) await send(Buffer.alloc(0));
        call.end();
        await response;
      },
    });
    for await (const chunk of chunks) await send(chunk);
    if (first) await send(Buffer.alloc(0));
    if (!call.writableEnded) call.end();
    const res = await response;
    return Number(res.stored);
  } catch (err) {
    call.cancel();
    throw BackplaneError.from(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    client.close();
  }
}
