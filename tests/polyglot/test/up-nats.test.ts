import { join } from 'node:path';
import { freePort, spawnProcess, tempDir } from '@backplane/runtime/testing';
import { buildDescriptors, CHECKS, reflectionTargets, runPythonSuite } from './suite';

const BIN = require.resolve('@backplane/cli/dist/bin.js');

/**
 * The docker-compose topology without Docker: `backplane up --nats` runs a local nats-server and the five
 * services as processes, sharing on the distributed engine; the Python suite then drives all of it.
 */
describe('backplane up --nats, driven from Python', () => {
  const dir = tempDir('up-nats-');
  let up: ReturnType<typeof spawnProcess>;
  let ports: number[];
  const address = (i: number) => `127.0.0.1:${ports[i]}`;

  beforeAll(async () => {
    ports = [];
    for (let i = 0; i < 7; i++) ports.push(await freePort());
    const [ns, depot, ts, sharing, ds, nats, dsClients] = ports;
    up = spawnProcess(
      process.execPath,
      [
        BIN,
        'up',
        '--nats',
        '--nats-port',
        String(nats),
        '--data-dir',
        join(dir.path, 'data'),
        '--ports',
        `name-server=${ns},ibp-depot=${depot},tuplespace=${ts},sharing=${sharing},ds-coordinator=${ds}`,
      ],
      {
        env: {
          ...process.env,
          BACKPLANE_DS_DATA_PORT: '0',
          BACKPLANE_DS_SERVICES: `python=${dsClients}`,
          BACKPLANE_TS_ADMIN_PASSWORD: 'up-nats-secret',
        },
      },
    );
    await up.waitForOutput(/Ctrl-C stops everything/, 60_000);
  }, 70_000);

  afterAll(async () => {
    await up?.stop('SIGINT');
    dir.remove();
  });

  it('serves every check of the Python suite, sharing on NATS', async () => {
    expect(up.output()).toMatch(/nats\s+127\.0\.0\.1:\d+/);
    const result = await runPythonSuite({
      ...buildDescriptors(dir.path),
      natsEngine: true,
      naming: address(0),
      // one depot in this topology: the third-party copy goes from the depot to itself
      depotA: address(1),
      depotB: address(1),
      tuplespace: address(2),
      tsUser: 'admin',
      tsPassword: 'up-nats-secret',
      sharing: address(3),
      dsCoordinator: address(4),
      dsService: 'python',
      reflectionTargets: reflectionTargets({
        naming: address(0),
        depot: address(1),
        tuplespace: address(2),
        sharing: address(3),
        ds: address(4),
      }),
    });
    if (result.code !== 0) console.error(result.output);
    expect(result.failed).toEqual([]);
    expect(result.passed).toEqual(CHECKS);
    expect(result.code).toBe(0);
  });
});
