// `backplane up` on free loopback ports in a child process: what the CLI, packaging and polyglot tests and
// the job-farm example start. `@backplane/cli/dist/testing`.
import { join } from 'node:path';
import { freePort, type SpawnedProcess, spawnProcess } from '@backplane/runtime/testing';
import { SERVICES } from './services';

export interface UpOptions {
  dataDir: string;
  /** The CLI to run (default: this package's): the packaging test runs the one unpacked from a tarball. */
  bin?: string;
  cwd?: string;
  /** More arguments for `backplane up`, e.g. ['--nats', '--nats-port', '4333']. */
  args?: string[];
  /** The ds-coordinator's client services, by name (default: `default`); each gets a free port. */
  dsServices?: string[];
  /** More environment for the child (over this process's). */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export interface RunningUp {
  process: SpawnedProcess;
  /** host:port of each service `backplane up` started, by its name (name-server, ibp-depot, …). */
  addresses: Record<string, string>;
  /** host:port of each ds client service, by name. */
  dsServices: Record<string, string>;
  /** Ctrl-C, as a user stops it. */
  stop(): Promise<number | null>;
}

const address = (port: number) => `127.0.0.1:${port}`;

export async function startUp(options: UpOptions): Promise<RunningUp> {
  const addresses: Record<string, string> = {};
  const ports: string[] = [];
  for (const s of SERVICES) {
    const port = await freePort();
    addresses[s.name] = address(port);
    ports.push(`${s.name}=${port}`);
  }
  const dsServices: Record<string, string> = {};
  for (const name of options.dsServices ?? ['default']) dsServices[name] = address(await freePort());
  const child = spawnProcess(
    process.execPath,
    [
      options.bin ?? join(__dirname, 'bin.js'),
      'up',
      '--data-dir',
      options.dataDir,
      '--ports',
      ports.join(','),
      ...(options.args ?? []),
    ],
    {
      cwd: options.cwd,
      env: {
        ...process.env,
        BACKPLANE_DS_DATA_PORT: '0',
        BACKPLANE_DS_SERVICES: Object.entries(dsServices)
          .map(([name, a]) => `${name}=${a.slice(a.lastIndexOf(':') + 1)}`)
          .join(','),
        ...options.env,
      },
    },
  );
  try {
    await child.waitForOutput(/Ctrl-C stops everything/, options.readyTimeoutMs ?? 60_000);
  } catch (err) {
    await child.stop('SIGINT');
    throw err;
  }
  return { process: child, addresses, dsServices, stop: () => child.stop('SIGINT') };
}
