#!/usr/bin/env node
// The full test suite: builds, runs every package's jest suite through turbo, then prints one line per
// package and, last, the plain `N passed, N failed` line CI counts. Exit code 1 when anything failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const packageDirs = ['packages', 'services', 'tests', 'examples']
  .flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => join(root, d, p)) : []))
  .concat([join(root, 'bench')])
  .filter((d) => existsSync(join(d, 'package.json')));

function ensureNatsServer() {
  const found = [
    process.env.NATS_SERVER_BIN,
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ].some((p) => p && existsSync(p));
  if (found) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    console.log('nats-server not found: installing the Debian package');
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    const install = spawnSync('apt-get', ['install', '-y', '-qq', 'nats-server'], { stdio: 'inherit' });
    if (update.status === 0 && install.status === 0) return;
  }
  console.error(
    'the NATS tests need nats-server: `sudo apt-get install nats-server`, or set NATS_SERVER_BIN',
  );
  process.exit(1);
}

/** The polyglot suite runs Python clients on Debian's python3-grpcio (which belongs to /usr/bin/python3). */
function ensurePythonGrpc() {
  const python = process.env.BACKPLANE_PYTHON ?? '/usr/bin/python3';
  const hasGrpc = () =>
    spawnSync(python, ['-c', 'import grpc, google.protobuf'], { stdio: 'ignore' }).status === 0;
  if (hasGrpc()) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    console.log('python3-grpcio not found: installing the Debian package');
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    spawnSync('apt-get', ['install', '-y', '-qq', 'python3-grpcio', 'python3-protobuf'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (hasGrpc()) return;
  }
  console.error(
    'the polyglot tests need Python gRPC: `sudo apt-get install python3-grpcio python3-protobuf`',
  );
  process.exit(1);
}

ensureNatsServer();
ensurePythonGrpc();
for (const dir of packageDirs) rmSync(join(dir, '.jest-results.json'), { force: true });

const turbo = spawnSync(
  join(root, 'node_modules', '.bin', 'turbo'),
  ['run', 'test', '--continue', '--concurrency=2', '--output-logs=new-only', ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: root, env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', FORCE_COLOR: '0' } },
);

let passed = 0;
let failed = 0;
const lines = [];
for (const dir of packageDirs) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (!pkg.scripts?.test) continue;
  const file = join(dir, '.jest-results.json');
  if (!existsSync(file)) {
    lines.push(`  ${pkg.name}: no results (the suite did not run to the end)`);
    failed += 1;
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const broken = r.numRuntimeErrorTestSuites ?? 0;
  passed += r.numPassedTests;
  failed += r.numFailedTests + broken;
  lines.push(
    `  ${pkg.name}: ${r.numPassedTests} passed, ${r.numFailedTests} failed${broken ? `, ${broken} suites failed to run` : ''}`,
  );
}
console.log('\nTest results by package:');
console.log(lines.join('\n'));
if (turbo.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
