import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoServiceClient } from '@backplane/proto/echo';
import { unary } from '@backplane/runtime';
import { freePort } from '@backplane/runtime/testing';
import { TupleSpaceClient, template, tuple } from '@backplane/tuplespace-client';
import { credentials } from '@grpc/grpc-js';
import {
  fmt,
  type Measurement,
  measure,
  median,
  pct,
  printMeasurements,
  rssMb,
  writeResults,
} from './harness';
import { firstLine, startChild, stopChild, waitServing } from './processes';

const DURATION = Number(process.env.BENCH_DURATION_MS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BIG = Number(process.env.BENCH_TS_TUPLES ?? 1_000_000);
const WAKEUPS = Number(process.env.BENCH_TS_WAKEUPS ?? 300);
const PASSWORD = 'bench-admin-password';
const serverMain = require.resolve('@backplane/tuplespace/dist/main.js');

export async function benchTupleSpace(): Promise<void> {
  console.log(
    `\n== tuplespace (16 concurrent clients; ${BIG.toLocaleString('en-US')} tuples for the index run)`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'bench-ts-'));
  const port = await freePort();
  const server = startChild(serverMain, {
    BACKPLANE_PORT: String(port),
    BACKPLANE_DATA_DIR: dir,
    BACKPLANE_NAMESERVER: '',
    BACKPLANE_TS_ADMIN_PASSWORD: PASSWORD,
  });
  server.stdout?.resume();
  const address = `127.0.0.1:${port}`;
  await waitServing(address);
  const echo = startChild(require.resolve('./echo-server.js'));
  const echoPort = Number((await firstLine(echo, /echo listening on (\d+)/))[1]);
  const echoClient = new EchoServiceClient(`127.0.0.1:${echoPort}`, credentials.createInsecure());
  const ts = new TupleSpaceClient(address, { user: 'admin', password: PASSWORD });
  const other = new TupleSpaceClient(address, { user: 'admin', password: PASSWORD });
  // the same client with one HTTP/2 stream per call, for comparison (the default sends calls over a pipeline)
  const plain = new TupleSpaceClient(address, { user: 'admin', password: PASSWORD, pipeline: false });
  const payload = Buffer.alloc(64, 1);
  try {
    const pairs = await ts.createSpace('pairs');
    const opts = { concurrency: 16, durationMs: DURATION };
    const rounds: Array<{ echo: Measurement; pairs: Measurement }> = [];
    for (let r = 0; r < ROUNDS; r++) {
      rounds.push({
        echo: await measure(
          'echo (bare grpc-js)',
          () => unary(echoClient.echo.bind(echoClient), { payload }),
          opts,
        ),
        pairs: await measure(
          'write + take (indexed first field)',
          async (i) => {
            await pairs.write(tuple(`k${i}`, i, payload));
            const got = await pairs.take(template(`k${i}`, Number, Buffer));
            if (!got) throw new Error('take found nothing');
          },
          opts,
        ),
      });
    }
    const pairRatio = median(rounds.map((x) => x.pairs.opsPerSec / x.echo.opsPerSec));
    const plainPairs = plain.space('pairs');
    const unpipelined = await measure(
      'write + take, pipeline off',
      async (i) => {
        await plainPairs.write(tuple(`p${i}`, i, payload));
        if (!(await plainPairs.take(template(`p${i}`, Number, Buffer))))
          throw new Error('take found nothing');
      },
      opts,
    );
    printMeasurements(
      [...rounds.map((x) => x.echo), ...rounds.map((x) => x.pairs), unpipelined],
      rounds[0]?.echo as Measurement,
    );

    // wake-up latency: a blocked waitToTake, then a write from another connection
    const wake = await ts.createSpace('wake');
    const latencies: number[] = [];
    for (let i = 0; i < WAKEUPS; i++) {
      const waiting = wake.waitToTake(template('w', i), { timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 2));
      const t0 = performance.now();
      await Promise.all([
        waiting.then(() => latencies.push(performance.now() - t0)),
        other.space('wake').write(tuple('w', i)),
      ]);
    }
    const wakeP50 = pct(latencies, 50);
    const wakeP99 = pct(latencies, 99);

    // take from a big space vs a small one: the index, not a scan
    const takeIn = async (space: string, size: number) => {
      const sp = await ts.createSpace(space);
      for (let done = 0; done < size; done += 10_000) {
        const n = Math.min(10_000, size - done);
        await sp.multiWrite(Array.from({ length: n }, (_, j) => tuple(`item${done + j}`, done + j)));
      }
      let k = 0;
      return measure(
        `take + write back, ${size.toLocaleString('en-US')} tuples`,
        async () => {
          const i = (k++ * 7919) % size;
          const got = await sp.take(template(`item${i}`, Number));
          if (!got) throw new Error(`item${i} missing`);
          await sp.write(tuple(`item${i}`, i));
        },
        opts,
      );
    };
    const small = await takeIn('small', 1000);
    const t0 = performance.now();
    const big = await takeIn('big', BIG);
    const loadSeconds = (performance.now() - t0) / 1000 - big.seconds - 1;
    const rss = rssMb(server.pid as number);
    const bigRatio = small.opsPerSec / big.opsPerSec;
    printMeasurements([small, big], small);

    console.log(
      `write+take pairs (median of ${ROUNDS} paired rounds): ${fmt(pairRatio, 2)}× echo (target ≥ 0.50×) ${pairRatio >= 0.5 ? 'OK' : 'BELOW TARGET'}`,
    );
    console.log(
      `waitToTake wake-up (write sent → taker answered, ${WAKEUPS} wake-ups): p50 ${fmt(wakeP50, 2)} ms, p99 ${fmt(wakeP99, 2)} ms (target p99 < 5 ms) ${wakeP99 < 5 ? 'OK' : 'ABOVE TARGET'}`,
    );
    console.log(
      `take from ${BIG.toLocaleString('en-US')} tuples is ${fmt(bigRatio, 2)}× slower than from 1,000 (target ≤ 2×) ${bigRatio <= 2 ? 'OK' : 'ABOVE TARGET'}; loading took ~${fmt(loadSeconds, 0)} s, server RSS ${fmt(rss, 0)} MB`,
    );
    const path = writeResults('tuplespace.json', {
      ratios: { writeTakeVsEcho: pairRatio, bigVsSmallTake: bigRatio },
      rounds,
      pipelineOff: unpipelined,
      wakeup: { p50Ms: wakeP50, p99Ms: wakeP99, samples: latencies.length },
      index: { small, big, tuples: BIG, rssMb: rss },
    });
    console.log(`results: ${path}`);
  } finally {
    ts.close();
    other.close();
    plain.close();
    echoClient.close();
    await stopChild(echo);
    await stopChild(server);
    rmSync(dir, { recursive: true, force: true });
  }
}
