import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { DsService } from '@backplane/ds-client';
import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { freePort } from '@backplane/runtime/testing';
import { SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { TupleSpaceClient, template, tuple, values } from '@backplane/tuplespace-client';
import {
  composeV1,
  composeV2,
  dockerEngine,
  dockerUnavailable,
  type Engine,
  must,
  ROOT,
  run,
} from '../src/docker';

/**
 * `docker compose up` as a user runs it, from the host: images built (their base images made without a
 * registry, tests/compose/scripts/base-images.sh), every service used through the addresses it gives a
 * program on the host, then `down` and `up` again with every piece of data still there. Where Docker
 * cannot run (not root, no engine), it is skipped, and `pnpm test` lists it as skipped.
 */
const PROJECT = 'backplane-compose-test';

/** Why Docker cannot run here, known before any test is declared (so a skip shows as one). */
const unavailable = dockerUnavailable();
if (unavailable) process.stdout.write(`docker compose test skipped: ${unavailable}\n`);

let engine: Engine | undefined;
const env: Record<string, string> = {};
const timings: Record<string, number> = {};

const compose = (args: string[], timeoutMs = 300_000) =>
  must('docker', ['compose', '-p', PROJECT, ...args], { env, timeoutMs });
/** The cluster: docker-compose.yml with deploy/compose.cluster.yml, as a project of its own. */
const CLUSTER = ['-p', `${PROJECT}-cluster`, '-f', 'docker-compose.yml', '-f', 'deploy/compose.cluster.yml'];
const cluster = (args: string[], timeoutMs = 300_000) =>
  must('docker', ['compose', ...CLUSTER, ...args], { env, timeoutMs });

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings[what] = Date.now() - t0;
  }
}

async function setUp(): Promise<void> {
  engine = await dockerEngine();
  if (engine.unavailable) throw new Error(engine.unavailable);
  if (!(await composeV2())) throw new Error('no Compose v2 (`docker compose`) after installing it');
  // ports nothing else uses, so a developer's own `backplane up` or compose project is not in the way
  for (const v of [
    'BACKPLANE_NAMESERVER_PORT',
    'BACKPLANE_IBP_PORT',
    'BACKPLANE_TS_PORT',
    'BACKPLANE_SHARING_PORT',
    'BACKPLANE_DS_PORT',
    'BACKPLANE_DS_DATA_PORT',
    'BACKPLANE_DS_SERVICE_PORT',
    'BACKPLANE_SHARING_2_PORT',
    'BACKPLANE_SHARING_3_PORT',
  ])
    env[v] = String(await freePort());
  await timed('base images', () =>
    must('sh', [join(ROOT, 'tests', 'compose', 'scripts', 'base-images.sh')], { timeoutMs: 600_000 }),
  );
  await timed('image build', () =>
    must('docker', ['build', '-q', '-f', 'deploy/Dockerfile', '-t', 'backplane:local', '.'], {
      timeoutMs: 900_000,
    }),
  );
}

async function tearDown(): Promise<void> {
  if (engine && !engine.unavailable) {
    await run('docker', ['compose', '-p', PROJECT, 'down', '-v', '--remove-orphans'], {
      env,
      timeoutMs: 120_000,
    });
    const size = await run('docker', ['image', 'inspect', 'backplane:local', '--format', '{{.Size}}']);
    process.stdout.write(
      `docker compose test: ${JSON.stringify(timings)} ms; image backplane:local ${Math.round(Number(size.stdout) / 1e6)} MB\n`,
    );
  }
  await engine?.stop();
}

const hostAddress = (v: string) => `127.0.0.1:${env[v]}`;

/** What the test wrote before `down`, to read back after `up`. */
const kept = { name: 'compose-test/kept', readCap: '', key: 'compose.kept', tuple: 'kept' };

async function adminPassword(): Promise<string> {
  return (await compose(['exec', '-T', 'tuplespace', 'cat', '/data/admin-password'])).trim();
}

function connectTcp(address: string): Promise<Socket> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port: Number(port) }, () => resolve(s));
    s.once('error', reject);
  });
}

function readN(s: Socket | NodeJS.ReadableStream, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (b: Buffer) => {
      got += b.toString();
      if (got.length >= n) {
        s.off('data', onData);
        resolve(got.slice(0, n));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

(unavailable ? describe.skip : describe)('docker compose', () => {
  beforeAll(setUp, 1_800_000);
  afterAll(tearDown, 180_000);

  it('passes `docker compose config` with Compose v2 and docker-compose 1.29', async () => {
    for (const file of [
      ['-f', 'docker-compose.yml'],
      ['-f', 'docker-compose.yml', '-f', 'deploy/compose.cluster.yml'],
    ]) {
      await must('docker', ['compose', ...file, 'config', '-q'], { env });
      const v1 = await composeV1();
      expect(v1).toBeDefined();
      await must((v1 as string[])[0] as string, [...(v1 as string[]).slice(1), ...file, 'config', '-q'], {
        env,
      });
    }
  }, 600_000);

  it('starts every service healthy, serves a program on the host, and keeps its data across down and up', async () => {
    await timed('up', () => compose(['up', '-d', '--wait', '--wait-timeout', '180'], 300_000));
    const ps = await compose(['ps', '--format', '{{.Service}} {{.Health}}']);
    for (const s of ['name-server', 'ibp-depot', 'tuplespace', 'sharing', 'ds-coordinator', 'nats'])
      expect(ps).toMatch(new RegExp(`^${s} healthy$`, 'm'));

    // names: bind and resolve from the host; the services registered themselves, at addresses the host can dial
    const names = new NamingClient({ nameServer: hostAddress('BACKPLANE_NAMESERVER_PORT') });
    await names.bind(kept.name, { host: '127.0.0.1', port: 9, metadata: {} });
    expect((await names.resolve(kept.name)).binding?.location?.port).toBe(9);
    const depot = await names.resolve('ibp-depot');
    expect(`${depot.binding?.location?.host}:${depot.binding?.location?.port}`).toBe(
      hostAddress('BACKPLANE_IBP_PORT'),
    );
    // ... and at the addresses another container can dial, to a container
    const inside = JSON.parse(
      await compose([
        'exec',
        '-T',
        'tuplespace',
        '/app/deploy/entrypoint.sh',
        'backplane',
        'names',
        'resolve',
        'ibp-depot',
        '--ns',
        `name-server:${env.BACKPLANE_NAMESERVER_PORT}`,
        '--json',
      ]),
    ) as { binding: { location: { host: string; port: number } } };
    expect(inside.binding.location).toMatchObject({
      host: 'ibp-depot',
      port: Number(env.BACKPLANE_IBP_PORT),
    });

    // IBP: the capabilities name the depot's address on the host, and work
    const ibp = new IbpClient({ depot: hostAddress('BACKPLANE_IBP_PORT') });
    const data = Buffer.from('bytes through a capability');
    const caps = await ibp.allocate(data.length, { reliability: 'STABLE', duration: 3600 });
    expect(caps.readCap.startsWith(`ibp://${hostAddress('BACKPLANE_IBP_PORT')}/`)).toBe(true);
    await ibp.store(caps.writeCap, data);
    expect((await ibp.read(caps.readCap)).toString()).toBe(data.toString());
    kept.readCap = caps.readCap;

    // tuples: write and take, and one left for after the restart
    const ts = new TupleSpaceClient(hostAddress('BACKPLANE_TS_PORT'), {
      user: 'admin',
      password: await adminPassword(),
    });
    const space = ts.space('default');
    await space.write(tuple('job', 1));
    expect(values((await space.take(template('job', Number)))?.tuple)).toEqual(['job', 1]);
    await space.write(tuple(kept.tuple, 42));

    // sharing: a committed transaction; the ring answers with the node's address on the host
    const conn = new SharingConnection(hostAddress('BACKPLANE_SHARING_PORT'));
    expect(await conn.refresh()).toEqual([hostAddress('BACKPLANE_SHARING_PORT')]);
    const props = new SharedProperties(conn);
    // two keys in one transaction: the NATS engine commits it whole (the README's example)
    const txn = props.transaction();
    txn.put(kept.key, 'committed');
    txn.put(`${kept.key}.other`, 'committed too');
    expect(await txn.commit()).toBeGreaterThan(0);

    // ds: a node on the host receives a client of the coordinator's default service
    const node = await DsService.create('default', null, {
      coordinator: hostAddress('BACKPLANE_DS_PORT'),
      node: 'host-node',
    });
    const client = await connectTcp(hostAddress('BACKPLANE_DS_SERVICE_PORT'));
    const stream = await node.serve(30_000);
    client.write('hello');
    expect(await readN(stream, 5)).toBe('hello');
    stream.write('world');
    expect(await readN(client, 5)).toBe('world');
    client.destroy();
    await node.close();
    for (const c of [names, ibp, ts]) c.close();
    conn.close();

    // down (containers and network gone, volumes kept) and up again: everything is still there
    await timed('down', () => compose(['down'], 120_000));
    expect((await compose(['ps', '-q'])).trim()).toBe('');
    await timed('up again', () => compose(['up', '-d', '--wait', '--wait-timeout', '180'], 300_000));
    const names2 = new NamingClient({ nameServer: hostAddress('BACKPLANE_NAMESERVER_PORT') });
    expect((await names2.resolve(kept.name)).binding?.location?.port).toBe(9);
    const ibp2 = new IbpClient({ depot: hostAddress('BACKPLANE_IBP_PORT') });
    expect((await ibp2.read(kept.readCap)).toString()).toBe(data.toString());
    const ts2 = new TupleSpaceClient(hostAddress('BACKPLANE_TS_PORT'), {
      user: 'admin',
      password: await adminPassword(),
    });
    expect(values((await ts2.space('default').read(template(kept.tuple, Number)))?.tuple)).toEqual([
      kept.tuple,
      42,
    ]);
    const conn2 = new SharingConnection(hostAddress('BACKPLANE_SHARING_PORT'));
    expect((await new SharedProperties(conn2).get(kept.key))?.text()).toBe('committed');
    expect((await new SharedProperties(conn2).get(`${kept.key}.other`))?.text()).toBe('committed too');
    for (const c of [names2, ibp2, ts2]) c.close();
    conn2.close();
    // the ports are free again for the cluster below
    await timed('down -v', () => compose(['down', '-v'], 120_000));
  }, 900_000);

  it('runs a 3-node NATS cluster and three sharing nodes with every stream on three replicas', async () => {
    await timed('cluster up', () =>
      cluster(['up', '-d', '--wait', '--wait-timeout', '180'], 300_000).catch(async (err: unknown) => {
        // what the containers said, for a failure that happens only in CI
        const logs = await run('docker', ['compose', ...CLUSTER, 'logs', '--no-color', '--tail', '40'], {
          env,
          timeoutMs: 60_000,
        });
        throw new Error(`${(err as Error).message}\n--- logs ---\n${logs.stdout.slice(-12_000)}`);
      }),
    );
    const nodes = ['BACKPLANE_SHARING_PORT', 'BACKPLANE_SHARING_2_PORT', 'BACKPLANE_SHARING_3_PORT'].map(
      hostAddress,
    );
    const conn = new SharingConnection(nodes[0] as string);
    expect(new Set(await conn.refresh())).toEqual(new Set(nodes));
    const revision = await new SharedProperties(conn).put('cluster.k', 'everywhere');
    conn.close();
    for (const node of nodes) {
      const c = new SharingConnection(node);
      const got = await new SharedProperties(c).get('cluster.k');
      expect([node, got?.text(), got?.revision]).toEqual([node, 'everywhere', revision]);
      c.close();
    }
    const jsz = JSON.parse(
      await cluster([
        'exec',
        '-T',
        'nats',
        'wget',
        '-qO-',
        'http://127.0.0.1:8222/jsz?streams=true&config=true',
      ]),
    ) as {
      account_details?: Array<{ stream_detail?: Array<{ name: string; config: { num_replicas: number } }> }>;
    };
    const streams = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
    // the properties' log, its snapshots and the ring
    expect(streams.map((st) => st.name).sort()).toEqual([
      'BP_backplane-sharing',
      'KV_backplane-sharing-nodes',
      'OBJ_BP_backplane-sharing_snap',
    ]);
    for (const st of streams) expect([st.name, st.config.num_replicas]).toEqual([st.name, 3]);
    await timed('cluster down', () => cluster(['down', '-v'], 120_000));
  }, 600_000);
});
