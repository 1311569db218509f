import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoServiceClient } from '@backplane/proto/echo';
import { unary } from '@backplane/runtime';
import { freePort, startNats } from '@backplane/runtime/testing';
import { SharedEvents, SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { credentials } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { fmt, type Measurement, measure, median, pct, printMeasurements, writeResults } from './harness';
import { firstLine, startChild, stopChild, waitServing } from './processes';

const DURATION = Number(process.env.BENCH_DURATION_MS ?? 5000);
const EVENTS = Number(process.env.BENCH_SHARING_EVENTS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const serverMain = require.resolve('@backplane/sharing/dist/main.js');
const KEYS = 1000;
const value = Buffer.alloc(100, 7);
const opts = { concurrency: 64, durationMs: DURATION };

async function node(env: Record<string, string>) {
  const port = await freePort();
  const child = startChild(serverMain, { BACKPLANE_PORT: String(port), BACKPLANE_NAMESERVER: '', ...env });
  child.stdout?.resume();
  const address = `127.0.0.1:${port}`;
  await waitServing(address);
  return { child, address };
}

/** publish → deliver latency (one at a time) and events/s (a burst), through `publish`/`subscribe`. */
async function eventFigures(
  subscribe: (onEvent: () => void) => Promise<() => Promise<void>>,
  publish: (i: number) => Promise<void>,
): Promise<{ p50Ms: number; p99Ms: number; eventsPerSec: number }> {
  let wake: (() => void) | undefined;
  let received = 0;
  const stop = await subscribe(() => {
    received++;
    wake?.();
  });
  const lat: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((r) => {
      wake = r;
    });
    await publish(i);
    await got;
    lat.push(performance.now() - t0);
  }
  received = 0;
  const target = EVENTS;
  const t0 = performance.now();
  const done = new Promise<void>((r) => {
    wake = () => {
      if (received >= target) r();
    };
  });
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < target; i++) {
    inflight.push(publish(i));
    if (inflight.length >= 64) await inflight.shift();
  }
  await Promise.all(inflight);
  await Promise.race([done, new Promise((r) => setTimeout(r, 30_000))]);
  const secs = (performance.now() - t0) / 1000;
  await stop();
  return { p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), eventsPerSec: received / secs };
}

export async function benchSharing(): Promise<void> {
  console.log(`\n== sharing (64 concurrent calls, ${KEYS} keys of ${value.length} bytes)`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-sharing-'));
  const echo = startChild(require.resolve('./echo-server.js'));
  const echoPort = Number((await firstLine(echo, /echo listening on (\d+)/))[1]);
  const echoClient = new EchoServiceClient(`127.0.0.1:${echoPort}`, credentials.createInsecure());
  const nats = await startNats();
  const embedded = await node({ BACKPLANE_DATA_DIR: dir });
  const onNats = await node({ BACKPLANE_NATS_URL: nats.url, BACKPLANE_DATA_DIR: dir });
  const nc = await connect({ servers: nats.url });
  const conns: SharingConnection[] = [];
  try {
    const results: Record<string, Measurement> = {};
    const echoM = await measure(
      'echo (bare grpc-js)',
      () => unary(echoClient.echo.bind(echoClient), { payload: value }),
      opts,
    );
    // embedded
    const ce = new SharingConnection(embedded.address);
    conns.push(ce);
    const pe = new SharedProperties(ce);
    for (let k = 0; k < KEYS; k++) await pe.put(`bench.k${k}`, value);
    results.embeddedGet = await measure('embedded get', (i) => pe.get(`bench.k${i % KEYS}`), opts);
    results.embeddedPut = await measure('embedded put', (i) => pe.put(`bench.k${i % KEYS}`, value), opts);
    printMeasurements([echoM, results.embeddedGet, results.embeddedPut], echoM);
    // NATS: the service vs raw @nats-io/kv doing the same
    const kv = await new Kvm(nc).create('bench-raw', { history: 16 });
    for (let k = 0; k < KEYS; k++) await kv.put(`bench.k${k}`, value);
    // the node connects with noAsyncTraces (nats.js then builds no Error per request): the raw client with
    // the same option, for reference (the target is against the client's defaults)
    const ncLean = await connect({ servers: nats.url, noAsyncTraces: true });
    const kvLean = await new Kvm(ncLean).open('bench-raw');
    const cn = new SharingConnection(onNats.address);
    conns.push(cn);
    const pn = new SharedProperties(cn);
    for (let k = 0; k < KEYS; k++) await pn.put(`bench.k${k}`, value);
    // interleaved rounds; ratios are medians of the rounds' ratios
    const natsRounds: Array<Record<'rawGet' | 'natsGet' | 'rawPut' | 'natsPut' | 'leanGet', Measurement>> =
      [];
    for (let r = 0; r < ROUNDS; r++) {
      natsRounds.push({
        rawGet: await measure('raw @nats-io/kv get', (i) => kv.get(`bench.k${i % KEYS}`), opts),
        natsGet: await measure('sharing (NATS) get', (i) => pn.get(`bench.k${i % KEYS}`), opts),
        leanGet: await measure('raw get, noAsyncTraces', (i) => kvLean.get(`bench.k${i % KEYS}`), opts),
        rawPut: await measure('raw @nats-io/kv put', (i) => kv.put(`bench.k${i % KEYS}`, value), opts),
        natsPut: await measure('sharing (NATS) put', (i) => pn.put(`bench.k${i % KEYS}`, value), opts),
      });
    }
    const natsRatio = (a: 'natsGet' | 'natsPut' | 'leanGet', b: 'rawGet' | 'rawPut') =>
      median(natsRounds.map((x) => x[a].opsPerSec / x[b].opsPerSec));
    const mid = natsRounds[Math.floor(natsRounds.length / 2)] as (typeof natsRounds)[number];
    const rawGet = mid.rawGet;
    const rawPut = mid.rawPut;
    results.natsGet = mid.natsGet;
    results.natsPut = mid.natsPut;
    printMeasurements(
      natsRounds.flatMap((x) => [x.rawGet, x.natsGet, x.leanGet, x.rawPut, x.natsPut]),
      natsRounds[0]?.rawGet as Measurement,
    );
    await ncLean.close();
    // events
    const en = new SharedEvents(cn);
    const viaService = await eventFigures(
      async (on) => {
        const sub = await en.subscribe('bench.ev', on);
        return () => sub.unsubscribe();
      },
      async (i) => {
        await en.publish('bench.ev', `e${i}`);
      },
    );
    const rawEvents = await eventFigures(
      async (on) => {
        const sub = nc.subscribe('raw.bench.ev', { callback: () => on() });
        await nc.flush();
        return async () => sub.unsubscribe();
      },
      async (i) => {
        nc.publish('raw.bench.ev', `e${i}`);
        await nc.flush();
      },
    );
    const ratios = {
      embeddedGetVsEcho: results.embeddedGet.opsPerSec / echoM.opsPerSec,
      embeddedPutVsEcho: results.embeddedPut.opsPerSec / echoM.opsPerSec,
      natsGetVsRawKv: natsRatio('natsGet', 'rawGet'),
      natsPutVsRawKv: natsRatio('natsPut', 'rawPut'),
      rawLeanGetVsRawKv: natsRatio('leanGet', 'rawGet'),
      eventsPerSecVsRawNats: viaService.eventsPerSec / rawEvents.eventsPerSec,
    };
    const ok = (r: number, t: number) => `${fmt(r, 2)}× (target ≥ ${t}×) ${r >= t ? 'OK' : 'BELOW TARGET'}`;
    console.log(
      `embedded get: ${ok(ratios.embeddedGetVsEcho, 0.6)} echo; put: ${ok(ratios.embeddedPutVsEcho, 0.6)} echo`,
    );
    console.log(
      `NATS get (median of ${ROUNDS} rounds): ${ok(ratios.natsGetVsRawKv, 0.5)} raw KV; put: ${ok(ratios.natsPutVsRawKv, 0.5)} raw KV; (raw get with noAsyncTraces: ${fmt(ratios.rawLeanGetVsRawKv, 2)}× raw KV)`,
    );
    console.log(
      `events (NATS): publish→deliver p50 ${fmt(viaService.p50Ms, 2)} ms, p99 ${fmt(viaService.p99Ms, 2)} ms (raw NATS ${fmt(rawEvents.p50Ms, 2)} / ${fmt(rawEvents.p99Ms, 2)} ms); ${fmt(viaService.eventsPerSec)} events/s = ${fmt(ratios.eventsPerSecVsRawNats, 2)}× raw NATS (flushed publishes, 64 in flight)`,
    );
    console.log(
      `results: ${writeResults('sharing.json', { ratios, results, echo: echoM, rawGet, rawPut, natsRounds, events: { viaService, rawEvents } })}`,
    );
  } finally {
    for (const c of conns) c.close();
    echoClient.close();
    await nc.close();
    await stopChild(embedded.child);
    await stopChild(onNats.child);
    await stopChild(echo);
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
