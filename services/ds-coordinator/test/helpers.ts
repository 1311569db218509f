import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DsService, type HandoffPolicy } from '@backplane/ds-client';
import { tempDir } from '@backplane/runtime/testing';
import { type DsCoordinatorOptions, type RunningDsCoordinator, startDsCoordinator } from '../src';

export interface TestCoordinator {
  running: RunningDsCoordinator;
  /** host:port of the `default` service. */
  address: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** A coordinator on free ports with a `default` service (and any others named). */
export async function startCoordinator(
  options: Partial<DsCoordinatorOptions> & { names?: string[]; dataDir?: string } = {},
): Promise<TestCoordinator> {
  const dir = options.dataDir ? undefined : tempDir('ds-test-');
  const dataDir = options.dataDir ?? (dir as { path: string }).path;
  const names = options.names ?? ['default'];
  const running = await startDsCoordinator({
    port: 0,
    dataPort: 0,
    services: new Map(names.map((n) => [n, { host: '127.0.0.1', port: 0 }])),
    bindingWaitMs: 300,
    pendingTimeoutMs: 5000,
    ...options,
    dataDir,
  });
  return {
    running,
    address: running.services.get('default') as string,
    dataDir,
    stop: async () => {
      await running.close();
      dir?.remove();
    },
  };
}

let nodes = 0;

/** A DsService attached to the coordinator under a unique node id (or the one given). */
export function attachNode(
  coordinator: TestCoordinator,
  options: { name?: string; policy?: HandoffPolicy | null; node?: string } = {},
): Promise<DsService> {
  return DsService.create(options.name ?? 'default', options.policy ?? null, {
    coordinator: coordinator.running.address,
    node: options.node ?? `node-${process.pid}-${++nodes}`,
  });
}

/** A client connection from a given loopback address (each address is a distinct client). */
export function connectClient(address: string, from: string): Promise<Socket> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      localAddress: from,
      allowHalfOpen: true,
    });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Reads exactly n bytes from a stream (paused mode). */
export function readBytes(stream: Duplex | Socket, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`read ${have} of ${n} bytes in ${timeoutMs} ms`));
    }, timeoutMs);
    const onReadable = () => {
      while (have < n) {
        const chunk = stream.read(Math.min(n - have, stream.readableLength || 1)) as Buffer | null;
        if (!chunk) return;
        parts.push(chunk);
        have += chunk.length;
      }
      cleanup();
      resolve(Buffer.concat(parts));
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended after ${have} of ${n} bytes`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
    };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    onReadable();
  });
}

/** Writes and waits until flushed. */
export function write(stream: Duplex | Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(data, (err) => (err ? reject(err) : resolve())));
}

/** The nodes and client connections a test opens, all closed by cleanup(). */
export function tracker(coordinator: () => TestCoordinator) {
  const nodes: DsService[] = [];
  const sockets: Socket[] = [];
  return {
    async node(options: Parameters<typeof attachNode>[1] = {}): Promise<DsService> {
      const ds = await attachNode(coordinator(), options);
      nodes.push(ds);
      return ds;
    },
    async client(from: string): Promise<Socket> {
      const s = await connectClient(coordinator().address, from);
      sockets.push(s);
      return s;
    },
    /** The test closed this node itself. */
    forget(ds: DsService): void {
      nodes.splice(nodes.indexOf(ds), 1);
    },
    async cleanup(): Promise<void> {
      for (const s of sockets.splice(0)) s.destroy();
      for (const n of nodes.splice(0)) await n.close();
    },
  };
}
