import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..', '..');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (bounded), never throwing: the caller looks at the code. */
export function run(
  cmd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; input?: string } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Like run, but rejects with the command's output when it fails. */
export async function must(
  cmd: string,
  args: string[],
  options: Parameters<typeof run>[2] = {},
): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}${r.stdout.slice(-2000)}`,
    );
  return r.stdout;
}

/**
 * Why a Docker engine cannot be had here (decided at once, before tests are declared), or undefined: root
 * can install and start one; anyone else needs one running.
 */
export function dockerUnavailable(): string | undefined {
  if (isRoot) return undefined;
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000 });
  return info.status === 0
    ? undefined
    : 'no Docker engine is running, and only root may install and start one';
}

const dockerUp = async () =>
  (await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 })).code === 0;

export interface Engine {
  /** Why the compose test cannot run here, or undefined when it can. */
  unavailable?: string;
  /** Stops what this test started (the daemon, when it was not running before). */
  stop(): Promise<void>;
}

/**
 * A Docker engine and Compose v2 to test with: the running one, or, as root, Debian's packages installed
 * (scripts/debian-packages.sh: docker.io and debootstrap from bookworm, docker-compose 2 from trixie)
 * and a dockerd started for the test and stopped after it.
 */
export async function dockerEngine(): Promise<Engine> {
  const none = { stop: async () => undefined };
  if (await dockerUp()) return none;
  if (!isRoot)
    return { ...none, unavailable: 'no Docker engine is running, and only root may install and start one' };
  const install = await run('bash', [join(ROOT, 'scripts', 'debian-packages.sh'), 'docker'], {
    timeoutMs: 600_000,
  });
  if (install.code !== 0)
    return { ...none, unavailable: `installing Docker failed: ${install.stderr.slice(-500)}` };
  const logDir = join('/var/tmp', 'backplane-compose-test');
  mkdirSync(logDir, { recursive: true });
  const out = openSync(join(logDir, 'dockerd.log'), 'a');
  const daemon = spawn('dockerd', [], { stdio: ['ignore', out, out], detached: true });
  daemon.unref();
  const until = Date.now() + 60_000;
  while (!(await dockerUp())) {
    if (Date.now() > until || daemon.exitCode !== null)
      return {
        stop: async () => void daemon.kill('SIGTERM'),
        unavailable: `dockerd did not start (see ${join(logDir, 'dockerd.log')})`,
      };
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    stop: async () => {
      daemon.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        if (daemon.exitCode !== null) return resolve();
        const timer = setTimeout(() => {
          daemon.kill('SIGKILL');
          resolve();
        }, 20_000);
        daemon.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** Whether a Compose v2 (`docker compose`) is there. */
export async function composeV2(): Promise<boolean> {
  return (await run('docker', ['compose', 'version'], { timeoutMs: 10_000 })).code === 0;
}

/**
 * docker-compose 1.29 (Debian bookworm's, unpacked beside the v2 package, which takes its name): the
 * command to run it, or undefined when it cannot be had here.
 */
export async function composeV1(): Promise<string[] | undefined> {
  const dir = '/var/tmp/backplane-compose-v1';
  const pkgs = join(dir, 'root', 'usr', 'lib', 'python3', 'dist-packages');
  if (!existsSync(join(pkgs, 'compose')) && isRoot) {
    const r = await run('bash', [join(ROOT, 'scripts', 'debian-packages.sh'), 'compose-v1', dir], {
      timeoutMs: 300_000,
    });
    if (r.code !== 0) return undefined;
  }
  if (!existsSync(join(pkgs, 'compose'))) return undefined;
  return [
    '/usr/bin/env',
    `PYTHONPATH=${pkgs}`,
    '/usr/bin/python3',
    '-c',
    'from compose.cli.main import main; main()',
  ];
}
