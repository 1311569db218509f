import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { startUp } from '@backplane/cli/dist/testing';
import { tempDir } from '@backplane/runtime/testing';

const ROOT = join(__dirname, '..', '..', '..');
/** What we publish: every library, client, service and the CLI, versioned in lock-step. */
const PUBLISHED = [
  'packages/proto',
  'packages/client-core',
  'packages/runtime',
  'packages/naming-client',
  'packages/ibp-client',
  'packages/tuplespace-client',
  'packages/sharing-client',
  'packages/ds-client',
  'packages/cli',
  'services/name-server',
  'services/ibp-depot',
  'services/tuplespace',
  'services/sharing',
  'services/ds-coordinator',
];
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'packages/runtime/package.json'), 'utf8')) as { version: string }
).version;

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  exports?: Record<string, string | Record<string, string>>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

function tarList(tarball: string): Set<string> {
  return new Set(execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n'));
}

function tarManifest(tarball: string): Manifest {
  return JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
}

/** Every file a manifest points at: main, types, bin and each exports target. */
function entryPoints(m: Manifest): string[] {
  const out = [m.main, m.types, ...Object.values(m.bin ?? {})];
  for (const target of Object.values(m.exports ?? {})) {
    if (typeof target === 'string') out.push(target);
    else out.push(...Object.values(target));
  }
  return out.filter((p): p is string => typeof p === 'string').map((p) => p.replace(/^\.\//, ''));
}

describe('published packages', () => {
  const dir = tempDir('packaging-');
  const tarballs = new Map<string, string>();

  beforeAll(() => {
    const out = join(dir.path, 'tarballs');
    mkdirSync(out);
    for (const pkg of PUBLISHED) {
      const printed = execFileSync('pnpm', ['pack', '--pack-destination', out], {
        cwd: join(ROOT, pkg),
        encoding: 'utf8',
        env: { ...process.env, COREPACK_INTEGRITY_KEYS: '0' },
      });
      const file = printed.trim().split('\n').at(-1) as string;
      tarballs.set(pkg, file);
    }
  }, 120_000);

  afterAll(() => dir.remove());

  it('pack with their entry points, types and README, and depend on published versions only', () => {
    for (const [pkg, tarball] of tarballs) {
      const files = tarList(tarball);
      const m = tarManifest(tarball);
      expect({ pkg, private: m.private ?? false, version: m.version }).toEqual({
        pkg,
        private: false,
        version: VERSION,
      });
      const readme = files.has('package/README.md')
        ? execFileSync('tar', ['-xzOf', tarball, 'package/README.md'], { encoding: 'utf8' })
        : '';
      // a README that says how to install the package and shows it in use
      expect({ pkg, install: readme.includes(`npm install`) && readme.includes(m.name) }).toEqual({
        pkg,
        install: true,
      });
      const missing = entryPoints(m).filter((p) => !files.has(`package/${p}`));
      expect({ pkg, missing }).toEqual({ pkg, missing: [] });
      expect({ pkg, types: m.types !== undefined || pkg === 'packages/cli' }).toEqual({ pkg, types: true });
      const deps = { ...m.dependencies, ...m.peerDependencies, ...m.optionalDependencies };
      const local = Object.entries(deps).filter(
        ([, v]) => v.startsWith('workspace:') || v.startsWith('file:'),
      );
      expect({ pkg, local }).toEqual({ pkg, local: [] });
      // lock-step: every @backplane dependency is this release
      const ours = Object.entries(deps).filter(([k, v]) => k.startsWith('@backplane/') && v !== VERSION);
      expect({ pkg, ours }).toEqual({ pkg, ours: [] });
      // built code, the sources its maps point at, and docs: no tests or local state
      const stray = [...files].filter((f) => /\/test\/|\.test\.|\.jest-results|\/data\//.test(f));
      expect({ pkg, stray }).toEqual({ pkg, stray: [] });
      // every source and declaration map points at a file that ships (stack traces, go-to-definition)
      const unmapped: string[] = [];
      const maps = [...files].filter((f) => f.endsWith('.map'));
      const unpacked = join(dir.path, 'unpacked', pkg);
      mkdirSync(unpacked, { recursive: true });
      execFileSync('tar', ['-xzf', tarball, '-C', unpacked]);
      for (const m of maps) {
        const map = JSON.parse(readFileSync(join(unpacked, m), 'utf8')) as { sources: string[] };
        for (const source of map.sources) {
          const target = posix.normalize(posix.join(posix.dirname(m), source));
          if (!files.has(target)) unmapped.push(`${m} → ${source}`);
        }
      }
      expect({ pkg, maps: maps.length > 0, unmapped: unmapped.slice(0, 5) }).toEqual({
        pkg,
        maps: true,
        unmapped: [],
      });
    }
  });

  it('client packages bring no server dependencies (no LevelDB addon, logger, reflection or health service)', () => {
    const manifests = new Map([...tarballs.values()].map((t) => [tarManifest(t).name, tarManifest(t)]));
    /** Every package a user gets with `name`: ours followed through their manifests, third-party by name. */
    const closure = (name: string, seen = new Set<string>()): Set<string> => {
      if (seen.has(name)) return seen;
      seen.add(name);
      const m = manifests.get(name);
      for (const dep of Object.keys({ ...m?.dependencies, ...m?.peerDependencies })) closure(dep, seen);
      return seen;
    };
    const clients = [...manifests.keys()].filter(
      (n) => n.endsWith('-client') || n === '@backplane/client-core',
    );
    expect(clients.length).toBe(6);
    const server =
      /^(@backplane\/(runtime|name-server|ibp-depot|tuplespace|sharing|ds-coordinator)|classic-level|memory-level|abstract-level|pino|@grpc\/reflection|grpc-health-check|@nats-io\/.*)$/;
    for (const client of clients) {
      const pulled = [...closure(client)].filter((d) => server.test(d));
      expect({ client, pulled }).toEqual({ client, pulled: [] });
    }
  });

  it('install into an empty project without a registry, type-check and run against `backplane up`', async () => {
    const app = join(dir.path, 'app');
    const modules = join(app, 'node_modules');
    mkdirSync(join(modules, '@backplane'), { recursive: true });
    const dependencies: Record<string, string> = {};
    for (const tarball of tarballs.values()) {
      const m = tarManifest(tarball);
      const target = join(modules, m.name);
      mkdirSync(target, { recursive: true });
      execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
      dependencies[m.name] = `file:${tarball}`;
    }
    // third-party packages come from the workspace's install (tests never reach the network): link them
    for (const source of [join(ROOT, 'node_modules'), join(ROOT, 'node_modules', '.pnpm', 'node_modules')]) {
      for (const entry of readdirSync(source)) {
        if (entry.startsWith('.') || entry === '@backplane') continue;
        const scoped = entry.startsWith('@')
          ? readdirSync(join(source, entry)).map((m) => `${entry}/${m}`)
          : [entry];
        for (const name of scoped) {
          if (existsSync(join(modules, name))) continue;
          mkdirSync(join(modules, name, '..'), { recursive: true });
          symlinkSync(join(source, name), join(modules, name));
        }
      }
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, dependencies }));
    writeFileSync(join(app, 'main.ts'), CONSUMER);
    // the published types, as a user's TypeScript sees them through `exports`
    const tsc = (args: string[]) => {
      try {
        execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), ...args], {
          cwd: app,
          encoding: 'utf8',
        });
      } catch (err) {
        throw new Error(`tsc failed:\n${(err as { stdout?: string }).stdout ?? err}`);
      }
    };
    tsc([
      '--strict',
      '--module',
      'node16',
      '--moduleResolution',
      'node16',
      '--target',
      'es2022',
      '--types',
      'node',
      '--skipLibCheck',
      'false',
      'main.ts',
    ]);

    // the CLI from the tarball, run in the user's project
    const up = await startUp({
      dataDir: join(dir.path, 'data'),
      bin: join(modules, '@backplane/cli/dist/bin.js'),
      cwd: app,
      readyTimeoutMs: 30_000,
    });
    const at = (name: string) => up.addresses[name] as string;
    try {
      const out = execFileSync(process.execPath, ['main.js'], {
        cwd: app,
        encoding: 'utf8',
        timeout: 30_000,
        env: {
          ...process.env,
          BACKPLANE_NAMESERVER: at('name-server'),
          APP_DEPOT: at('ibp-depot'),
          APP_TS: at('tuplespace'),
          APP_SHARING: at('sharing'),
          APP_DS: at('ds-coordinator'),
        },
      });
      expect(out.trim().split('\n')).toEqual([
        'resolved ibp-depot',
        'depot: hello from a tarball',
        'tuple: job 7',
        'property: 1',
        'ds targets: 0',
        'done',
      ]);
    } finally {
      await up.stop();
    }
  }, 120_000);
});

/** A user's program: one call or two per client package, with their published types. */
const CONSUMER = `
import { DsService } from '@backplane/ds-client';
import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { SharingFactory } from '@backplane/sharing-client';
import { template, TupleSpaceClient, tuple, values } from '@backplane/tuplespace-client';

async function main(): Promise<void> {
  const names = new NamingClient();
  const found = await names.resolve('ibp-depot');
  console.log(\`resolved \${found.binding?.name}\`);

  const ibp = new IbpClient({ depot: process.env.APP_DEPOT });
  const caps = await ibp.allocate(1024, { reliability: 'VOLATILE', data: Buffer.from('hello from a tarball') });
  console.log(\`depot: \${(await ibp.read(caps.readCap)).toString()}\`);

  const ts = new TupleSpaceClient(process.env.APP_TS);
  const space = ts.space('default');
  await space.write(tuple('job', 7));
  const job = await space.waitToTake(template('job', Number), { timeoutMs: 5000 });
  console.log(\`tuple: \${values(job.tuple).map(String).join(' ')}\`);

  const props = SharingFactory.createSharedProperties(\`boot@\${process.env.APP_SHARING}\`);
  await props.put('app.count', '1');
  console.log(\`property: \${(await props.get('app.count'))?.text()}\`);

  const node = await DsService.create('default', null, { coordinator: process.env.APP_DS, node: 'tarball-node' });
  console.log(\`ds targets: \${(await node.getAllTargets()).length}\`);
  await node.close(true);

  ibp.close();
  ts.close();
  SharingFactory.closeAll();
  console.log('done');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
`;
