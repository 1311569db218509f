import { join } from 'node:path';
import { freePort, tempDir } from '@backplane/runtime/testing';
import { SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { type RunningUp, startUp } from '../src/testing';

const BIN = join(__dirname, '..', 'dist', 'bin.js');

/** `backplane up --nats --cluster 3`: three nats-servers in one JetStream cluster, three sharing nodes on R3. */
describe('backplane up --nats --cluster 3', () => {
  const dir = tempDir('up-cluster-');
  let up: RunningUp;

  beforeAll(async () => {
    up = await startUp({
      dataDir: join(dir.path, 'data'),
      bin: BIN,
      readyTimeoutMs: 100_000,
      args: ['--nats', '--cluster', '3', '--nats-port', String(await freePort())],
    });
  }, 120_000);

  afterAll(async () => {
    await up?.stop();
    dir.remove();
  });

  it('runs three sharing nodes that commit a two-key transaction at one and show it at the others', async () => {
    const output = up.process.output();
    for (const name of ['nats-1', 'nats-2', 'nats-3', 'sharing-1', 'sharing-2', 'sharing-3'])
      expect(output).toMatch(new RegExp(`${name}\\s+127\\.0\\.0\\.1:\\d+`));
    const base = Number((up.addresses.sharing as string).split(':')[1]);
    const nodes = [0, 1, 2].map((i) => `127.0.0.1:${base + i}`);
    const first = new SharingConnection(nodes[0] as string);
    expect(new Set(await first.refresh())).toEqual(new Set(nodes));
    first.close();
    const at = (i: number) => new SharedProperties(new SharingConnection(nodes[i] as string));
    const writer = at(1);
    const revision = await writer.transaction().put('up.a', '1').put('up.b', '2').commit();
    writer.connection.close();
    const reader = at(2);
    expect([(await reader.get('up.a'))?.revision, (await reader.get('up.b'))?.text()]).toEqual([
      revision,
      '2',
    ]);
    reader.connection.close();
  }, 60_000);
});
