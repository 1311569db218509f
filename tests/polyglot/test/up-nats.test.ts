import { join } from 'node:path';
import { type RunningUp, startUp } from '@backplane/cli/dist/testing';
import { freePort, tempDir } from '@backplane/runtime/testing';
import { buildDescriptors, CHECKS, reflectionTargets, runPythonSuite } from './suite';

/**
 * The docker-compose topology without Docker: `backplane up --nats` runs a local nats-server and the five
 * services as processes, sharing on the distributed engine; the Python suite then drives all of it.
 */
describe('backplane up --nats, driven from Python', () => {
  const dir = tempDir('up-nats-');
  let up: RunningUp;
  let addresses: Record<string, string>;
  const address = (name: string) => addresses[name] as string;

  beforeAll(async () => {
    up = await startUp({
      dataDir: join(dir.path, 'data'),
      args: ['--nats', '--nats-port', String(await freePort())],
      dsServices: ['python'],
      env: { BACKPLANE_TS_ADMIN_PASSWORD: 'up-nats-secret' },
    });
    addresses = up.addresses;
  }, 70_000);

  afterAll(async () => {
    await up?.stop();
    dir.remove();
  });

  it('serves every check of the Python suite, sharing on NATS', async () => {
    expect(up.process.output()).toMatch(/nats\s+127\.0\.0\.1:\d+/);
    const result = await runPythonSuite({
      ...buildDescriptors(dir.path),
      natsEngine: true,
      naming: address('name-server'),
      // one depot in this topology: the third-party copy goes from the depot to itself
      depotA: address('ibp-depot'),
      depotB: address('ibp-depot'),
      tuplespace: address('tuplespace'),
      tsUser: 'admin',
      tsPassword: 'up-nats-secret',
      sharing: address('sharing'),
      dsCoordinator: address('ds-coordinator'),
      dsService: 'python',
      reflectionTargets: reflectionTargets({
        naming: address('name-server'),
        depot: address('ibp-depot'),
        tuplespace: address('tuplespace'),
        sharing: address('sharing'),
        ds: address('ds-coordinator'),
      }),
    });
    // what the suite and `backplane up` said (a service that went away shows there)
    if (result.code !== 0)
      console.error(`${result.output}\n--- backplane up ---\n${up.process.output().slice(-6000)}`);
    expect(result.failed).toEqual([]);
    expect(result.passed).toEqual(CHECKS);
    expect(result.code).toBe(0);
  });
});
