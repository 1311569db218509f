import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@backplane/runtime/testing';

/** The etcd binary: $ETCD_BIN, or Debian's (`scripts/debian-packages.sh etcd`: trixie's etcd-server 3.5). */
export function etcdBinary(): string | undefined {
  return [process.env.ETCD_BIN, '/usr/bin/etcd', '/usr/local/bin/etcd'].find(
    (p): p is string => !!p && existsSync(p),
  );
}

export interface Etcd {
  /** Client URLs, e.g. ['http://127.0.0.1:2379', …]. */
  endpoints: string[];
  stop(): Promise<void>;
}

/**
 * `size` etcd members on loopback (one process each, data in a temp dir, fsync as etcd always does),
 * resolved once every member answers its health endpoint.
 */
export async function startEtcd(size: number): Promise<Etcd> {
  const bin = etcdBinary();
  if (!bin) throw new Error('etcd not found: scripts/debian-packages.sh etcd (or set ETCD_BIN)');
  const dir = mkdtempSync(join(tmpdir(), 'bench-etcd-'));
  const members = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({
      name: `e${i}`,
      client: await freePort(),
      peer: await freePort(),
    })),
  );
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const children: ChildProcess[] = members.map((m) =>
    spawn(
      bin,
      [
        '--name',
        m.name,
        '--data-dir',
        join(dir, m.name),
        '--listen-client-urls',
        `http://127.0.0.1:${m.client}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${m.peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${m.peer}`,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    ),
  );
  const endpoints = members.map((m) => `http://127.0.0.1:${m.client}`);
  const stop = async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r())))),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 30_000;
  for (const e of endpoints) {
    for (;;) {
      const ok = await fetch(`${e}/health`)
        .then((r) => r.json() as Promise<{ health?: string }>)
        .then((b) => b.health === 'true')
        .catch(() => false);
      if (ok) break;
      if (Date.now() > until) {
        await stop();
        throw new Error(`etcd member ${e} did not become healthy`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { endpoints, stop };
}
