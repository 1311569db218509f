import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { IbpClient } from '@backplane/ibp-client';
import { EchoServiceClient } from '@backplane/proto/echo';
import { unary } from '@backplane/runtime';
import { freePort } from '@backplane/runtime/testing';
import { credentials } from '@grpc/grpc-js';
import { fmt, type Measurement, measure, median, rssMb, writeResults } from './harness';
import { firstLine, startChild, stopChild, waitServing } from './processes';
import { sendToSink } from './tcp-bulk';

const MiB = 1024 * 1024;
const GIB = Number(process.env.BENCH_IBP_GIB ?? 1);
const STREAM_GIB = Number(process.env.BENCH_IBP_STREAM_GIB ?? 4);
const DURATION = Number(process.env.BENCH_DURATION_MS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const depotMain = require.resolve('@backplane/ibp-depot/dist/main.js');

function chunk(): Buffer {
  const b = Buffer.allocUnsafe(MiB);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i);
  return b;
}

/** `count` MiB chunks from one buffer: bulk data without holding gigabytes in memory. */
function chunks(count: number, buf: Buffer): Readable {
  let i = 0;
  return new Readable({
    read() {
      this.push(i++ < count ? buf : null);
    },
  });
}

const mbps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

async function tcpBaseline(bytes: number, buf: Buffer): Promise<number> {
  const sink = startChild(require.resolve('./tcp-sink.js'));
  const port = Number((await firstLine(sink, /sink listening on (\d+)/))[1]);
  const rate = await sendToSink(`127.0.0.1:${port}`, Math.ceil(bytes / buf.length), buf);
  await stopChild(sink);
  return rate;
}

async function fileBaseline(bytes: number, buf: Buffer, dir: string): Promise<number> {
  const path = join(dir, 'baseline.bin');
  const t0 = performance.now();
  const fh = await open(path, 'w');
  for (let done = 0; done < bytes; done += buf.length) await fh.write(buf, 0, buf.length, done);
  await fh.sync();
  await fh.close();
  const ms = performance.now() - t0;
  rmSync(path);
  return mbps(bytes, ms);
}

export async function benchIbp(): Promise<void> {
  console.log(`\n== ibp-depot (${GIB} GiB transfers in 1 MiB chunks; ${STREAM_GIB} GiB stream for RSS)`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-ibp-'));
  const port = await freePort();
  const depot = startChild(depotMain, {
    BACKPLANE_PORT: String(port),
    BACKPLANE_DATA_DIR: join(dir, 'depot'),
    BACKPLANE_NAMESERVER: '',
    BACKPLANE_IBP_STABLE_SIZE_MB: String(Math.ceil((STREAM_GIB + GIB + 1) * 1024)),
    BACKPLANE_IBP_VOLATILE_SIZE_MB: String(Math.ceil((GIB + 1) * 1024)),
  });
  depot.stdout?.resume();
  const address = `127.0.0.1:${port}`;
  await waitServing(address);
  const ibp = new IbpClient({ depot: address });
  const buf = chunk();
  const bytes = GIB * 1024 * MiB;
  try {
    const tcp = await tcpBaseline(bytes, buf);
    const file = await fileBaseline(bytes, buf, dir);
    const slower = Math.min(tcp, file);

    const results: Record<string, number> = {};
    for (const reliability of ['STABLE', 'VOLATILE'] as const) {
      const caps = await ibp.allocate(bytes, { reliability });
      let t0 = performance.now();
      await ibp.store(caps.writeCap, chunks(GIB * 1024, buf), { size: bytes });
      results[`store ${reliability}`] = mbps(bytes, performance.now() - t0);
      t0 = performance.now();
      let got = 0;
      for await (const c of ibp.readChunks(caps.readCap)) got += c.length;
      if (got !== bytes) throw new Error(`read ${got} of ${bytes} bytes`);
      results[`read ${reliability}`] = mbps(bytes, performance.now() - t0);
      await ibp.manage(caps.manageCap, 'DECR', { capType: 'READ' });
    }

    // RSS while streaming a large allocation in and out
    const streamBytes = STREAM_GIB * 1024 * MiB;
    let maxRss = rssMb(depot.pid as number);
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, rssMb(depot.pid as number));
    }, 100);
    const big = await ibp.allocate(streamBytes);
    await ibp.store(big.writeCap, chunks(STREAM_GIB * 1024, buf), { size: streamBytes });
    let streamed = 0;
    for await (const c of ibp.readChunks(big.readCap)) streamed += c.length;
    if (streamed !== streamBytes) throw new Error(`streamed ${streamed} of ${streamBytes} bytes back`);
    clearInterval(sampler);
    await ibp.manage(big.manageCap, 'DECR', { capType: 'READ' });

    // small allocations against the echo baseline, after the GiBs written above are on disk: their
    // write-back would otherwise fall into the STABLE runs' fsyncs
    execFileSync('sync');
    const echo = startChild(require.resolve('./echo-server.js'));
    const echoPort = Number((await firstLine(echo, /echo listening on (\d+)/))[1]);
    const echoClient = new EchoServiceClient(`127.0.0.1:${echoPort}`, credentials.createInsecure());
    const small = Buffer.alloc(4096, 1);
    const opts = { concurrency: 16, durationMs: DURATION };
    // the same work two ways: three calls (Allocate, Store, Read), and Allocate carrying the data + Read
    const threeCalls = (reliability: 'STABLE' | 'VOLATILE') => async () => {
      const caps = await ibp.allocate(4096, { reliability });
      await ibp.store(caps.writeCap, small);
      await ibp.read(caps.readCap);
    };
    const withData = (reliability: 'STABLE' | 'VOLATILE') => async () => {
      const caps = await ibp.allocate(4096, { reliability, data: small });
      await ibp.read(caps.readCap);
    };
    const kinds = {
      'three calls VOLATILE': threeCalls('VOLATILE'),
      'three calls STABLE': threeCalls('STABLE'),
      'Allocate with data + Read VOLATILE': withData('VOLATILE'),
      'Allocate with data + Read STABLE': withData('STABLE'),
    };
    // interleaved rounds, each small-op run paired with the echo run before it; medians reported
    const rounds: Array<Record<string, Measurement>> = [];
    for (let r = 0; r < ROUNDS; r++) {
      const round: Record<string, Measurement> = {
        echo: await measure(
          'echo (bare grpc-js)',
          () => unary(echoClient.echo.bind(echoClient), { payload: small }),
          opts,
        ),
      };
      for (const [name, op] of Object.entries(kinds)) round[name] = await measure(name, op, opts);
      rounds.push(round);
    }
    const ops = (name: string) => median(rounds.map((x) => (x[name] as Measurement).opsPerSec));
    const ratio = (name: string) =>
      median(rounds.map((x) => (x[name] as Measurement).opsPerSec / (x.echo as Measurement).opsPerSec));
    const small4k = Object.fromEntries(
      Object.keys(kinds).map((name) => [name, { opsPerSec: ops(name), vsEcho: ratio(name) }]),
    );
    echoClient.close();
    await stopChild(echo);

    const rows = [
      ['plain TCP socket copy', tcp],
      ['file write + fsync', file],
      ...Object.entries(results),
    ] as Array<[string, number]>;
    console.log('transfer                      MB/s   vs slower baseline');
    for (const [name, v] of rows)
      console.log(`${name.padEnd(28)} ${fmt(v).padStart(6)}   ${fmt(v / slower, 2)}×`);
    const readRatio = (results['read STABLE'] as number) / slower;
    const storeRatio = (results['store STABLE'] as number) / slower;
    console.log(
      `Read ${fmt(readRatio, 2)}× and STABLE Store ${fmt(storeRatio, 2)}× the slower baseline (target ≥ 0.50×) ${Math.min(readRatio, storeRatio) >= 0.5 ? 'OK' : 'BELOW TARGET'}`,
    );
    console.log(
      `Allocate+Store(4 KiB)+Read, median of ${ROUNDS} rounds paired with echo (${fmt(ops('echo'))} ops/s); target ≥ 0.30× echo:`,
    );
    for (const [name, r] of Object.entries(small4k)) {
      console.log(
        `  ${name.padEnd(36)} ${fmt(r.opsPerSec).padStart(6)} ops/s = ${fmt(r.vsEcho, 2)}× ${r.vsEcho >= 0.3 ? 'OK' : 'BELOW TARGET'}`,
      );
    }
    console.log(
      `depot RSS while streaming ${STREAM_GIB} GiB in and out: max ${fmt(maxRss, 1)} MB (target < 200 MB) ${maxRss < 200 ? 'OK' : 'ABOVE TARGET'}`,
    );
    const path = writeResults('ibp-depot.json', {
      transferMBps: Object.fromEntries(rows),
      ratios: {
        readVsSlowerBaseline: readRatio,
        stableStoreVsSlowerBaseline: storeRatio,
      },
      small: { echoOpsPerSec: ops('echo'), ...small4k, rounds },
      streamGiB: STREAM_GIB,
      maxRssMb: maxRss,
    });
    console.log(`results: ${path}`);
  } finally {
    ibp.close();
    await stopChild(depot);
    rmSync(dir, { recursive: true, force: true });
  }
}
