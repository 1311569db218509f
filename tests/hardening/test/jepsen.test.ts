import { formatJepsen, jepsenProblems } from '../src/jepsen/main';
import { runJepsen, SHORT } from '../src/jepsen/run';

/**
 * `pnpm jepsen`'s short mode: register and bank workloads through three sharing nodes on a 3-node NATS
 * cluster (the log on three replicas) while nats-servers and sharing nodes are killed -9 and restarted.
 */
describe('jepsen (short mode)', () => {
  it('keeps every register linearizable and every bank total at 500 through kills of nats-servers and sharing nodes', async () => {
    const report = await runJepsen(SHORT);
    process.stdout.write(`${formatJepsen(report)}\n`);
    expect(jepsenProblems(report)).toEqual([]);
    expect(report.faults.length).toBeGreaterThanOrEqual(3);
    expect(report.register.ok).toBeGreaterThan(200);
    expect(report.bank.transfers).toBeGreaterThan(50);
    expect(report.bank.reads).toBeGreaterThan(50);
    expect(report.bank.final).toBe(500);
  }, 240_000);
});
