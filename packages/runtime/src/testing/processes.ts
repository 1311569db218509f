import { type ChildProcess, spawn } from 'node:child_process';

const children = new Set<ChildProcess>();
let hooked = false;

/** Kills every child still running when the test process exits, so nothing outlives a test run. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const child of children) child.kill('SIGKILL');
  });
}

export interface SpawnedProcess {
  readonly child: ChildProcess;
  /** Everything the process printed (stdout + stderr). */
  output(): string;
  /** Resolves with the first match of `pattern` in the output. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM (or the given signal), then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Spawns a process that is killed when the test process exits and, at the latest, after `maxLifetimeMs`
 * (default 10 minutes): test processes always stop by themselves.
 */
export function spawnProcess(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; maxLifetimeMs?: number } = {},
): SpawnedProcess {
  hookExit();
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
    for (const l of listeners) l();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const lifetime = setTimeout(() => child.kill('SIGKILL'), options.maxLifetimeMs ?? 600_000);
  lifetime.unref();
  let alive = true;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false; // before the listeners run, so a waitForOutput fails at once
      clearTimeout(lifetime);
      children.delete(child);
      for (const l of listeners) l();
      resolve(code ?? (signal ? -1 : null));
    });
  });

  const waitForOutput = (pattern: RegExp, timeoutMs = 15_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = out.match(pattern);
        if (m) {
          done();
          resolve(m);
        } else if (!alive) {
          done();
          reject(new Error(`${command} exited before printing ${pattern}:\n${out.slice(-4000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${command} did not print ${pattern} within ${timeoutMs} ms:\n${out.slice(-4000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) => {
    if (!alive) return exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  return { child, output: () => out, waitForOutput, stop, kill: () => stop('SIGKILL'), exited };
}
