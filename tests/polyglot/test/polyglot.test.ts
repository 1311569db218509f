import { join } from 'node:path';
import { type RunningDsCoordinator, startDsCoordinator } from '@backplane/ds-coordinator';
import { type RunningDepot, startDepot } from '@backplane/ibp-depot';
import { type RunningNameServer, startNameServer } from '@backplane/name-server';
import { tempDir } from '@backplane/runtime/testing';
import { type RunningSharingServer, startSharingServer } from '@backplane/sharing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';
import { buildDescriptors, CHECKS, reflectionTargets, runPythonSuite } from './suite';

describe('Python clients (stubs built from proto/ at test time)', () => {
  const dir = tempDir('polyglot-');
  let naming: RunningNameServer;
  let depotA: RunningDepot;
  let depotB: RunningDepot;
  let tuplespace: RunningTupleSpaceServer;
  let sharing: RunningSharingServer;
  let ds: RunningDsCoordinator;
  let built: ReturnType<typeof buildDescriptors>;

  beforeAll(async () => {
    built = buildDescriptors(dir.path);
    naming = await startNameServer({ port: 0, dataDir: join(dir.path, 'ns') });
    depotA = await startDepot({ port: 0, dataDir: join(dir.path, 'a'), stableSizeMb: 64, volatileSizeMb: 8 });
    depotB = await startDepot({ port: 0, dataDir: join(dir.path, 'b'), stableSizeMb: 64, volatileSizeMb: 8 });
    tuplespace = await startTupleSpaceServer({
      port: 0,
      dataDir: join(dir.path, 'ts'),
      adminUser: 'admin',
      adminPassword: 'polyglot-secret',
    });
    sharing = await startSharingServer({ port: 0, dataDir: join(dir.path, 'sharing') });
    ds = await startDsCoordinator({
      port: 0,
      dataPort: 0,
      dataDir: join(dir.path, 'ds'),
      services: new Map([['python', { host: '127.0.0.1', port: 0 }]]),
    });
  });

  afterAll(async () => {
    await Promise.all(
      [naming, depotA, depotB, tuplespace, sharing, ds].map((s) => s?.close().catch(() => undefined)),
    );
    dir.remove();
  });

  it('reaches every service from Python: names, depots, tuple spaces, sharing, a ds handoff, and reflection', async () => {
    const result = await runPythonSuite({
      ...built,
      naming: naming.address,
      depotA: depotA.address,
      depotB: depotB.address,
      tuplespace: tuplespace.address,
      tsUser: 'admin',
      tsPassword: 'polyglot-secret',
      sharing: sharing.address,
      dsCoordinator: ds.address,
      dsService: 'python',
      reflectionTargets: reflectionTargets({
        naming: naming.address,
        depot: depotA.address,
        tuplespace: tuplespace.address,
        sharing: sharing.address,
        ds: ds.address,
      }),
    });
    if (result.code !== 0) console.error(result.output);
    expect(result.failed).toEqual([]);
    expect(result.passed).toEqual(CHECKS);
    expect(result.last).toBe(`${CHECKS.length} passed, 0 failed`);
    expect(result.code).toBe(0);
  });
});
