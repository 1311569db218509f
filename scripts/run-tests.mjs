#!/usr/bin/env node
// The full test suite: builds, runs every package's jest suite through turbo, then prints one line per
// package (with every skipped test and why) and, last, the plain `N passed, N failed, N skipped` line CI
// counts. Exit code 1 when anything failed, or a test was skipped that its package does not allow to be.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const packageDirs = ['packages', 'services', 'tests', 'examples']
  .flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => join(root, d, p)) : []))
  .concat([join(root, 'bench')])
  .filter((d) => existsSync(join(d, 'package.json')));

/** nats-server 2.10 (Debian trixie's, pinned: scripts/debian-packages.sh), installed when run as root. */
function ensureNatsServer() {
  const found = [
    process.env.NATS_SERVER_BIN,
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ].find((p) => p && existsSync(p));
  const version = found ? spawnSync(found, ['--version'], { encoding: 'utf8' }).stdout : '';
  if (/v2\.(1\d|[2-9]\d)\./.test(version ?? '') || process.env.NATS_SERVER_BIN) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    console.log(`nats-server ${found ? 'is older than 2.10' : 'not found'}: installing Debian trixie's`);
    if (
      spawnSync('bash', [join(root, 'scripts', 'debian-packages.sh'), 'nats'], { stdio: 'inherit' })
        .status === 0
    )
      return;
  }
  if (found) {
    console.log(`warning: ${version.trim()} is older than 2.10; the NATS tests expect 2.10 (see the README)`);
    return;
  }
  console.error(
    'the NATS tests need nats-server 2.10: `sudo bash scripts/debian-packages.sh nats`, or set NATS_SERVER_BIN',
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
// tests that cannot fail (no assertion, or toBeDefined on a caught error) fail the run
const selfCheck = spawnSync(process.execPath, [join(root, 'scripts', 'check-tests.mjs')], {
  stdio: 'inherit',
});
for (const dir of packageDirs) rmSync(join(dir, '.jest-results.json'), { force: true });

const turboTest = (args) =>
  spawnSync(
    join(root, 'node_modules', '.bin', 'turbo'),
    ['run', 'test', '--continue', '--concurrency=2', '--output-logs=new-only', ...args],
    { stdio: 'inherit', cwd: root, env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', FORCE_COLOR: '0' } },
  );
// the compose test builds images and runs containers: alone, after the others, so that neither slows the
// other (the overload floors are ratios of rates); arguments given on the command line run as given
const phases =
  process.argv.length > 2
    ? [process.argv.slice(2)]
    : [['--filter=!@backplane/compose-tests'], ['--filter=@backplane/compose-tests']];
const turbo = { status: 0 };
for (const args of phases) if (turboTest(args).status !== 0) turbo.status = 1;

// Test files of a package: what jest's testMatch finds (every *.test.ts under test/ and src/).
function testFiles(dir) {
  const out = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.test.ts')) out.push(p);
    }
  };
  walk(join(dir, 'test'));
  walk(join(dir, 'src'));
  return out;
}

/**
 * Skips: a package may declare the tests it allows to be skipped, and why, in its package.json
 * (`"backplane": { "allowedSkips": [{ "test": "<part of the test's full name>", "why": "…" }] }`), for a
 * test that cannot run on every machine (the partition run needs network namespaces). As root, which CI
 * is, every declared test can run, so no skip is allowed there. Any other skip fails the run: a skipped
 * test, a todo, or a test a `-t` filter left out.
 */
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const filtered = process.argv.length > 2;

let passed = 0;
let failed = 0;
let skipped = 0;
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
  const allowed = isRoot ? [] : (pkg.backplane?.allowedSkips ?? []);
  const skips = r.testResults.flatMap((t) =>
    t.assertionResults
      .filter((a) => a.status !== 'passed' && a.status !== 'failed')
      .map((a) => ({
        name: a.fullName,
        file: t.name,
        why: allowed.find((x) => a.fullName.includes(x.test))?.why,
      })),
  );
  const unexpected = skips.filter((s) => !s.why).length;
  // every test file ran (a path filter, or a file jest could not pick up, shows here)
  const files = testFiles(dir).length;
  const missingFiles = Math.max(0, files - r.numTotalTestSuites);
  passed += r.numPassedTests;
  skipped += skips.length;
  failed += r.numFailedTests + broken + unexpected + missingFiles;
  lines.push(
    `  ${pkg.name}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skips.length} skipped` +
      (broken ? `, ${broken} suites failed to run` : '') +
      (missingFiles ? `, ${missingFiles} of ${files} test files did not run` : ''),
  );
  for (const s of skips)
    lines.push(
      `    skipped: ${s.name} (${s.file.slice(dir.length + 1)}): ${
        s.why ? `allowed: ${s.why}` : isRoot ? 'not allowed (as root every test runs)' : 'not allowed'
      }`,
    );
}
console.log('\nTest results by package:');
console.log(lines.join('\n'));
if (filtered && skipped > 0)
  console.log('(a filtered run: the tests the filter left out count as skipped, and fail the run)');
if (selfCheck.status !== 0) {
  console.log('  check-tests: some tests cannot fail (listed above)');
  failed += 1;
}
if (turbo.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
