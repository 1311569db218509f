import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Debian's python3-grpcio belongs to /usr/bin/python3, not necessarily to the python3 first on PATH. */
const PYTHON = process.env.BACKPLANE_PYTHON ?? '/usr/bin/python3';
const PYTHON_DIR = join(__dirname, '..', 'python');

export const CHECKS = [
  'naming_bind_and_resolve',
  'ibp_allocate_store_read_copy',
  'ibp_fifo_read_waits_for_a_later_store',
  'tuplespace_write_take_wait_to_take',
  'sharing_put_get_transaction',
  'sharing_publish_subscribe',
  'ds_node_receives_a_handoff',
  'reflection_discovers_and_calls_every_service',
];

export interface SuiteResult {
  code: number;
  /** The checks that printed "ok", in order. */
  passed: string[];
  failed: string[];
  last: string;
  output: string;
}

/** Runs python/suite.py with a config; resolves with what it printed. */
export function runPythonSuite(config: unknown): Promise<SuiteResult> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [join(PYTHON_DIR, 'suite.py'), JSON.stringify(config)],
      { timeout: 90_000, cwd: PYTHON_DIR },
      (err, stdout, stderr) => {
        const lines = stdout.trim().split('\n');
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          passed: lines.filter((l) => l.startsWith('ok ')).map((l) => l.slice(3)),
          failed: lines.filter((l) => l.startsWith('FAIL')),
          last: lines.at(-1) ?? '',
          output: `${stdout}\n${stderr}`,
        });
      },
    );
  });
}

/**
 * Compiles proto/ the way any other language would start, into a descriptor set, and the reflection
 * protocol (which @grpc/reflection ships as .proto) into another; returns both paths.
 */
export function buildDescriptors(dir: string): { descriptors: string; reflectionDescriptors: string } {
  const root = join(__dirname, '..', '..', '..');
  const buf = join(require.resolve('@bufbuild/buf/package.json'), '..', 'bin', 'buf');
  const descriptors = join(dir, 'backplane.binpb');
  const reflectionDescriptors = join(dir, 'reflection.binpb');
  execFileSync(buf, ['build', join(root, 'proto'), '-o', descriptors]);
  const protos = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');
  execFileSync(buf, [
    'build',
    protos,
    '--path',
    join(protos, 'grpc', 'reflection', 'v1', 'reflection.proto'),
    '-o',
    reflectionDescriptors,
  ]);
  return { descriptors, reflectionDescriptors };
}

/** For each service: its address, its full name and a method the reflection check calls with an empty request. */
export function reflectionTargets(a: {
  naming: string;
  depot: string;
  tuplespace: string;
  sharing: string;
  ds: string;
}): Array<[string, string, string]> {
  return [
    [a.naming, 'backplane.naming.v1.NamingService', 'List'],
    [a.depot, 'backplane.ibp.v1.DepotService', 'Status'],
    [a.tuplespace, 'backplane.tuplespace.v1.TupleSpaceService', 'ListSpaces'],
    [a.sharing, 'backplane.sharing.v1.SharingService', 'Nodes'],
    [a.ds, 'backplane.ds.v1.CoordinatorService', 'Status'],
  ];
}
