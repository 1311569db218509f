import { tempDir } from '@backplane/runtime/testing';
import { formatFuzzTable, memoryBounded } from '../src/fuzz/report';
import { fuzzService, type ServiceFuzzReport } from '../src/fuzz/run';
import { SERVICE_NAMES, ServiceProcess } from '../src/services';

/** `pnpm fuzz`'s short mode: every service, every method, a few seconds each. */
const SECONDS = Number(process.env.BACKPLANE_FUZZ_SECONDS ?? 8);
const SEED = Number(process.env.BACKPLANE_FUZZ_SEED ?? 20261123);

describe('fuzz (short mode)', () => {
  const reports: ServiceFuzzReport[] = [];
  afterAll(() => {
    console.log(formatFuzzTable(reports));
  });

  it.each(SERVICE_NAMES.map((s) => [s]))(
    '%s survives hostile requests and raw frames, answers only documented codes, keeps its data',
    async (name) => {
      const dir = tempDir(`fuzz-${name}-`);
      const target = await ServiceProcess.start(name, dir.path);
      try {
        const r = await fuzzService(target, { seed: SEED, durationMs: SECONDS * 1000, concurrency: 16 });
        reports.push(r);
        expect(r.findings).toEqual([]);
        expect(r.processExits).toBe(0);
        expect(r.integrityProblems).toEqual([]);
        expect(memoryBounded(r)).toBe(true);
        // every method got inputs
        for (const [method, n] of Object.entries(r.perMethod))
          expect([method, n > 10]).toEqual([method, true]);
      } finally {
        await target.stop();
        dir.remove();
      }
    },
    SECONDS * 1000 + 90_000,
  );
});
