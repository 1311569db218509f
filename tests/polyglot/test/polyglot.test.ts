import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { type RunningDsCoordinator, startDsCoordinator } from '@backplane/ds-coordinator';
import { type RunningDepot, startDepot } from '@backplane/ibp-depot';
import { type RunningNameServer, startNameServer } from '@backplane/name-server';
import { tempDir } from '@backplane/runtime/testing';
import { type RunningSharingServer, startSharingServer } from '@backplane/sharing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';

/** Debian's python3-grpcio belongs to /usr/bin/python3, not necessarily to the python3 first on PATH. */
const PYTHON = process.env.BACKPLANE_PYTHON ?? '/usr/bin/python3';
const ROOT = join(__dirname, '..', '..', '..');
const SUITE = join(__dirname, '..', 'python', 'suite.py');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

function runPython(config: unknown): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [SUITE, JSON.stringify(config)],
      { timeout: 90_000, cwd: join(__dirname, '..', 'python') },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('Python clients (stubs built from proto/ at test time)', () => {
  const dir = tempDir('polyglot-');
  let naming: RunningNameServer;
  let depotA: RunningDepot;
  let depotB: RunningDepot;
  let tuplespace: RunningTupleSpaceServer;
  let sharing: RunningSharingServer;
  let ds: RunningDsCoordinator;
  const descriptors = join(dir.path, 'backplane.binpb');
  const reflectionDescriptors = join(dir.path, 'reflection.binpb');

  beforeAll(async () => {
    // compile proto/ the way any other language would start: buf turns it into a descriptor set
    const buf = join(require.resolve('@bufbuild/buf/package.json'), '..', 'bin', 'buf');
    execFileSync(buf, ['build', join(ROOT, 'proto'), '-o', descriptors]);
    // the reflection client needs only the reflection protocol itself
    const reflectionProtos = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');
    execFileSync(buf, [
      'build',
      reflectionProtos,
      '--path',
      join(reflectionProtos, 'grpc', 'reflection', 'v1', 'reflection.proto'),
      '-o',
      reflectionDescriptors,
    ]);
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
    const result = await runPython({
      descriptors,
      naming: naming.address,
      depotA: depotA.address,
      depotB: depotB.address,
      tuplespace: tuplespace.address,
      tsUser: 'admin',
      tsPassword: 'polyglot-secret',
      sharing: sharing.address,
      dsCoordinator: ds.address,
      dsService: 'python',
      reflectionDescriptors,
      reflectionTargets: [
        [naming.address, 'backplane.naming.v1.NamingService', 'List'],
        [depotA.address, 'backplane.ibp.v1.DepotService', 'Status'],
        [tuplespace.address, 'backplane.tuplespace.v1.TupleSpaceService', 'ListSpaces'],
        [sharing.address, 'backplane.sharing.v1.SharingService', 'Nodes'],
        [ds.address, 'backplane.ds.v1.CoordinatorService', 'Status'],
      ],
    });
    const lines = result.stdout.trim().split('\n');
    if (result.code !== 0) console.error(result.stdout, result.stderr);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('ok ')).map((l) => l.slice(3))).toEqual([
      'naming_bind_and_resolve',
      'ibp_allocate_store_read_copy',
      'ibp_fifo_read_waits_for_a_later_store',
      'tuplespace_write_take_wait_to_take',
      'sharing_put_get_transaction',
      'sharing_publish_subscribe',
      'ds_node_receives_a_handoff',
      'reflection_discovers_and_calls_every_service',
    ]);
    expect(lines.at(-1)).toBe('8 passed, 0 failed');
    expect(result.code).toBe(0);
  });
});
