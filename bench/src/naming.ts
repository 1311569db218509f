import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, nameCache } from '@backplane/naming-client';
import { EchoServiceClient } from '@backplane/proto/echo';
import { NamingServiceClient } from '@backplane/proto/naming';
import { unary } from '@backplane/runtime';
import { freePort } from '@backplane/runtime/testing';
import { credentials } from '@grpc/grpc-js';
import { fmt, type Measurement, measure, printMeasurements, rssMb, writeResults } from './harness';
import { firstLine, startChild, stopChild, waitServing } from './processes';

const DURATION = Number(process.env.BENCH_DURATION_MS ?? 5000);
const NAMES = Number(process.env.BENCH_NAMES ?? 100_000);
const CONCURRENCY = 64;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** The run with the median throughput. */
function median(runs: Measurement[]): Measurement {
  const sorted = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor(sorted.length / 2)] as Measurement;
}
const nameServerMain = require.resolve('@backplane/name-server/dist/main.js');

async function startNameServer() {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-ns-'));
  const child = startChild(nameServerMain, { BACKPLANE_PORT: String(port), BACKPLANE_DATA_DIR: dataDir });
  child.stdout?.resume();
  const address = `127.0.0.1:${port}`;
  await waitServing(address);
  return {
    child,
    address,
    stop: async () => {
      await stopChild(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const bindReq = (name: string, port: number) => ({
  scope: '',
  name,
  types: ['backplane.echo.v1.EchoService'],
  location: { host: '127.0.0.1', port, metadata: {} },
  leaseTtlMs: 0,
  addressId: '',
  ownerSecret: '',
});

export async function benchNaming(): Promise<void> {
  console.log(
    `\n== name-server (${ROUNDS} rounds of ${DURATION} ms per benchmark, ${CONCURRENCY} concurrent calls, medians)`,
  );
  const echo = startChild(join(__dirname, 'echo-server.js'));
  const echoPort = Number((await firstLine(echo, /echo listening on (\d+)/))[1]);
  const echoClient = new EchoServiceClient(`127.0.0.1:${echoPort}`, credentials.createInsecure());
  const payload = Buffer.from('ping');
  const echoOnce = () => unary(echoClient.echo.bind(echoClient), { payload });

  const ns = await startNameServer();
  const client = new NamingServiceClient(ns.address, credentials.createInsecure());
  for (let i = 0; i < 1000; i++)
    await unary(client.bind.bind(client), bindReq(`bench/resolve/${i}`, echoPort));
  await unary(client.bind.bind(client), bindReq('bench/echo', echoPort));
  // connect(): a client whose channel follows the name; its calls and repeated connect()s cost no Resolve
  const viaName = await connect(EchoServiceClient, 'bench/echo', { nameServer: ns.address });
  const rpcsBefore = nameCache.stats.resolveRpcs;
  for (let i = 0; i < 1000; i++)
    (await connect(EchoServiceClient, 'bench/echo', { nameServer: ns.address })).close();

  // the machine is shared and noisy: the runs are interleaved, ROUNDS times, and medians compared
  const opts = { concurrency: CONCURRENCY, durationMs: DURATION };
  const runs: Measurement[][] = [[], [], [], []];
  for (let round = 0; round < ROUNDS; round++) {
    runs[0]?.push(await measure('echo (bare grpc-js)', echoOnce, opts));
    runs[1]?.push(
      await measure(
        'Resolve',
        (i) =>
          unary(client.resolve.bind(client), {
            scope: '',
            name: `bench/resolve/${i % 1000}`,
            expectedType: 'backplane.echo.v1.EchoService',
          }),
        opts,
      ),
    );
    runs[2]?.push(
      await measure(
        'Bind (durable)',
        (i) => unary(client.bind.bind(client), bindReq(`bench/bind/${round}/${i}`, echoPort)),
        opts,
      ),
    );
    runs[3]?.push(
      await measure('echo via connect()', () => unary(viaName.echo.bind(viaName), { payload }), opts),
    );
  }
  const [baseline, resolve, bind, connected] = runs.map(median) as [
    Measurement,
    Measurement,
    Measurement,
    Measurement,
  ];
  const resolveRpcsForCached = nameCache.stats.resolveRpcs - rpcsBefore;
  viaName.close();
  nameCache.close();
  client.close();
  await ns.stop();

  // memory: a fresh name server holding NAMES bindings
  const big = await startNameServer();
  const bigClient = new NamingServiceClient(big.address, credentials.createInsecure());
  const rssEmpty = rssMb(big.child.pid as number);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < NAMES) {
        const i = next++;
        await unary(
          bigClient.bind.bind(bigClient),
          bindReq(`svc/${i.toString(36)}/instance-${i}`, 10_000 + (i % 50_000)),
        );
      }
    }),
  );
  const fillSeconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const rssAfterFill = rssMb(big.child.pid as number);
  // V8's memory reducer returns garbage from the fill once the process is idle for a few seconds
  await new Promise((r) => setTimeout(r, 10_000));
  const rssFull = rssMb(big.child.pid as number);
  bigClient.close();
  await big.stop();
  await stopChild(echo);
  echoClient.close();

  const rows: Measurement[] = [baseline, resolve, bind, connected];
  printMeasurements(rows, baseline);
  // each round's Resolve run sits next to its own echo run: the median of those paired ratios is the
  // figure least moved by the machine's drift
  const pairedRatio = (k: number) =>
    median(
      (runs[k] ?? []).map((m, r) => ({
        ...m,
        opsPerSec: m.opsPerSec / (runs[0]?.[r]?.opsPerSec || 1),
      })),
    ).opsPerSec;
  const resolveRatio = pairedRatio(1);
  console.log(
    `\nResolve / echo throughput: ${fmt(resolveRatio, 2)}× (median of per-round ratios; of the medians: ${fmt(resolve.opsPerSec / baseline.opsPerSec, 2)}×; target ≥ 0.70×) ${resolveRatio >= 0.7 ? 'OK' : 'BELOW TARGET'}`,
  );
  console.log(
    `Resolve RPCs for 1000 cached connect()s + ${fmt(connected.ops)} calls: ${resolveRpcsForCached} (target 0)`,
  );
  console.log(
    `RSS with ${fmt(NAMES)} names: ${fmt(rssFull, 1)} MB after 10 s idle, ${fmt(rssAfterFill, 1)} MB 1 s after the fill (empty: ${fmt(rssEmpty, 1)} MB; target < 300 MB) ${Math.max(rssFull, rssAfterFill) < 300 ? 'OK' : 'ABOVE TARGET'}; filled at ${fmt(NAMES / fillSeconds)} binds/s`,
  );
  const file = writeResults('name-server.json', {
    measurements: rows,
    rounds: runs,
    ratios: {
      resolveVsEchoPaired: resolveRatio,
      bindVsEchoPaired: pairedRatio(2),
      resolveVsEcho: resolve.opsPerSec / baseline.opsPerSec,
      bindVsEcho: bind.opsPerSec / baseline.opsPerSec,
      connectVsEcho: connected.opsPerSec / baseline.opsPerSec,
    },
    cachedConnectResolveRpcs: resolveRpcsForCached,
    memory: {
      names: NAMES,
      rssMb: rssFull,
      rssAfterFillMb: rssAfterFill,
      rssEmptyMb: rssEmpty,
      fillBindsPerSec: NAMES / fillSeconds,
    },
  });
  console.log(`results: ${file}`);
}
