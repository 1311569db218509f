import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { healthCheck } from '@backplane/runtime';

/** A child process for a benchmark: output discarded (so logging costs what it costs in production). */
export function startChild(file: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  return child;
}

export function firstLine(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      const m = line.match(pattern);
      if (m) {
        rl.close();
        child.stdout?.resume();
        resolve(m);
      }
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

export async function waitServing(address: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await healthCheck(address).catch(() => 'DOWN')) !== 'SERVING') {
    if (Date.now() > until) throw new Error(`${address} not serving after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}
