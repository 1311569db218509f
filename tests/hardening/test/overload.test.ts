import { overloadDs } from '../src/overload/ds';
import {
  formatOverloadTable,
  type OverloadReport,
  overloadProblems,
  overloadService,
} from '../src/overload/run';

/** `pnpm overload`'s short mode: 10× the benchmark's concurrency, then a flood of waiting calls. */
const OPTIONS = { seconds: 4, maxCallsPerClient: 1000, baselineMs: 2000 };

describe('overload (short mode)', () => {
  const reports: OverloadReport[] = [];
  afterAll(() => {
    process.stdout.write(`${formatOverloadTable(reports)}\n`);
  });

  it.each([['name-server'], ['ibp-depot'], ['tuplespace'], ['sharing']] as const)(
    '%s keeps answering at 10× load, refuses waiters beyond the per-client limit at once, and recovers',
    async (name) => {
      const r = await overloadService(name, OPTIONS);
      reports.push(r);
      expect(r.exits).toBe(0);
      expect(r.healthy).toBe(true);
      expect(r.waitersRefused).toBe(r.waiters - OPTIONS.maxCallsPerClient);
      // at least half the rate before during the load, and 80 % of it after
      expect(overloadProblems(r)).toEqual([]);
    },
    60_000,
  );

  it('ds-coordinator relays at 10× the clients and closes connections beyond the per-client limit at once', async () => {
    const r = await overloadDs(OPTIONS);
    reports.push(r);
    expect(r.waitersRefused).toBe(50);
    expect(overloadProblems(r)).toEqual([]);
  }, 60_000);
});
