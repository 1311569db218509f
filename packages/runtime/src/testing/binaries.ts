import { readFileSync } from 'node:fs';
import type { ConfigSpec } from '../config';
import { freePort } from './ports';
import { type SpawnedProcess, spawnProcess } from './processes';

export interface ServiceBinary {
  proc: SpawnedProcess;
  port: number;
  /** 127.0.0.1:port */
  address: string;
}

/**
 * Starts a service's real entry point (`node <main>`) on a free (or the given) port with its data in
 * `dataDir`, and waits until it prints `ready`.
 */
export async function startServiceBinary(
  main: string,
  options: {
    dataDir: string;
    port?: number;
    env?: Record<string, string>;
    ready: RegExp;
    /** Killed after this long at the latest (default 10 minutes, spawnProcess's bound). */
    maxLifetimeMs?: number;
  },
): Promise<ServiceBinary> {
  const port = options.port ?? (await freePort());
  const proc = spawnProcess(process.execPath, [main], {
    env: {
      ...process.env,
      BACKPLANE_PORT: String(port),
      BACKPLANE_DATA_DIR: options.dataDir,
      BACKPLANE_LOG_LEVEL: 'info',
      ...options.env,
    },
    maxLifetimeMs: options.maxLifetimeMs,
  });
  try {
    await proc.waitForOutput(options.ready);
  } catch (err) {
    // not ready in time: do not leave it running (it could take the port from the next attempt)
    await proc.kill();
    throw err;
  }
  return { proc, port, address: `127.0.0.1:${port}` };
}

/** The settings of `spec` whose env var and flag are missing from the Markdown table in `readmePath`. */
export function undocumentedSettings(readmePath: string, spec: ConfigSpec): string[] {
  const readme = readFileSync(readmePath, 'utf8');
  return Object.values(spec)
    .filter((s) => !new RegExp(`\\|\\s*\`${s.env}\`\\s*\\|\\s*\`--${s.flag}\`\\s*\\|`).test(readme))
    .map((s) => s.env);
}
