import { execFile } from 'node:child_process';
import { join } from 'node:path';

interface Summary {
  jobs: number;
  done: number;
  distinctIds: number;
  submitted: number;
  completed: number;
  byWorker: Record<string, number>;
  killed: { worker: string; job: number; redoneBy?: string } | null;
  owners: Record<string, { node: string; home: string }>;
  handoffs: number;
  progressEvents: number;
  sample: string;
}

describe('the job farm, end to end', () => {
  it('does every job exactly once through a worker kill, with clients handed to their owner node', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolve) =>
        execFile(
          process.execPath,
          [join(__dirname, '..', 'dist', 'farm.js')],
          { env: { ...process.env, JOBS: '8', WORKERS: '3' }, timeout: 150_000 },
          (err, out, errOut) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: out, stderr: errOut }),
        ),
    );
    if (code !== 0) console.error(stdout, stderr);
    const line = stdout.split('\n').find((l) => l.startsWith('summary '));
    expect(line).toBeDefined();
    const s = JSON.parse((line as string).slice('summary '.length)) as Summary;
    expect({
      done: s.done,
      distinctIds: s.distinctIds,
      submitted: s.submitted,
      completed: s.completed,
    }).toEqual({
      done: 8,
      distinctIds: 8,
      submitted: 8,
      completed: 8,
    });
    // the killed worker's job went back to the space and another worker did it
    expect(s.killed?.worker).toBe('worker-1');
    expect(s.killed?.redoneBy).toMatch(/^worker-[23]$/);
    expect(s.byWorker['worker-1']).toBeUndefined();
    // every client ended up on the node that owns its jobs; at least one got there by a handoff
    for (const o of Object.values(s.owners)) expect(o.node).toBe(o.home);
    expect(s.handoffs).toBeGreaterThanOrEqual(1);
    expect(s.progressEvents).toBe(8);
    expect(s.sample).toMatch(/^6 words: JOB TEXT/);
    expect(code).toBe(0);
  }, 160_000);
});
