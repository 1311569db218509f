import { unary } from '@backplane/client-core';
import { AckRequest } from '@backplane/proto/sharing';
import { type NatsServer, startNats, tempDir } from '@backplane/runtime/testing';
import { type RunningSharingServer, startSharingServer } from '@backplane/sharing';
import { type SharedEvent, SharedEvents, SharingConnection } from '../src';

const until = async (cond: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Durable SharedEvents: two sharing nodes on one nats-server, events kept, acks waited for 1 s. */
describe('durable SharedEvents on NATS', () => {
  let nats: NatsServer;
  const nodes: RunningSharingServer[] = [];
  const dirs = [tempDir(), tempDir(), tempDir()];
  let plain: RunningSharingServer;
  const connections: SharingConnection[] = [];
  const eventsAt = (node: RunningSharingServer) => {
    const conn = new SharingConnection(node.address);
    connections.push(conn);
    return new SharedEvents(conn);
  };

  beforeAll(async () => {
    nats = await startNats();
    for (const dir of dirs.slice(0, 2))
      nodes.push(
        await startSharingServer({
          natsUrl: nats.url,
          dataDir: dir.path,
          port: 0,
          bucket: 'durable',
          eventRetentionS: 600,
          eventAckWaitS: 1,
        }),
      );
    // events not kept: the seed's fire-and-forget events only
    plain = await startSharingServer({ dataDir: (dirs[2] as { path: string }).path, port: 0 });
  }, 60_000);

  afterAll(async () => {
    for (const c of connections) c.close();
    await Promise.all([...nodes, plain].map((n) => n?.close()));
    await nats?.stop();
    for (const d of dirs) d.remove();
  });

  it('gives a subscriber that was away, at another node, every event it did not acknowledge and no other', async () => {
    const [a, b] = [eventsAt(nodes[0] as RunningSharingServer), eventsAt(nodes[1] as RunningSharingServer)];
    const got: SharedEvent[] = [];
    const first = await a.subscribe('orders.*', (_s, _t, _v, e) => got.push(e), { durable: 'billing' });
    const sequences: (number | undefined)[] = [];
    for (const v of ['o1', 'o2', 'o3']) sequences.push(await b.publish(`orders.${v}`, v));
    await until(() => got.length === 3);
    expect(got.map((e) => e.value)).toEqual(['o1', 'o2', 'o3']);
    // publish answers with the stored event's sequence, and the subscriber sees the same one
    expect(got.map((e) => e.sequence)).toEqual(sequences);
    expect(sequences.every((s, i) => typeof s === 'number' && (i === 0 || s > (sequences[i - 1] ?? 0)))).toBe(
      true,
    );
    await first.unsubscribe();

    // published while nobody listens under that name
    for (const v of ['o4', 'o5', 'o6', 'o7']) await a.publish(`orders.${v}`, v);
    const again: SharedEvent[] = [];
    const second = await b.subscribe('orders.*', (_s, _t, _v, e) => again.push(e), { durable: 'billing' });
    await until(() => again.length === 4);
    await sleep(300);
    expect(again.map((e) => e.value)).toEqual(['o4', 'o5', 'o6', 'o7']);
    expect(again.some((e) => e.redelivered)).toBe(false);
    await second.unsubscribe();
  });

  it('delivers an event again, marked redelivered, when its callback fails', async () => {
    const se = eventsAt(nodes[0] as RunningSharingServer);
    const seen: SharedEvent[] = [];
    const sub = await se.subscribe(
      'jobs',
      async (_s, _t, _v, e) => {
        seen.push(e);
        if (seen.length === 1) throw new Error('the handler failed');
      },
      { durable: 'worker' },
    );
    const started = Date.now();
    await se.publish('jobs', 'job-1');
    await until(() => seen.length === 2, 15_000);
    // after the ack wait (1 s), not at once
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(seen.map((e) => [e.value, e.redelivered])).toEqual([
      ['job-1', false],
      ['job-1', true],
    ]);
    expect(seen[0]?.sequence).toBe(seen[1]?.sequence);
    expect(sub.unacknowledged).toBe(1);
    // acknowledged the second time: not delivered a third
    await sleep(1800);
    expect(seen).toHaveLength(2);
    await sub.unsubscribe();
  });

  it('starts a new durable subscription at a sequence or at a time', async () => {
    const se = eventsAt(nodes[1] as RunningSharingServer);
    const s1 = await se.publish('audit', 'a1');
    const s2 = await se.publish('audit', 'a2');
    await sleep(50);
    const since = new Date();
    await sleep(50);
    await se.publish('audit', 'a3');

    const fromSeq: string[] = [];
    const bySeq = await se.subscribe('audit', (_s, _t, v) => fromSeq.push(v), {
      durable: 'replay-seq',
      fromSequence: s2 as number,
    });
    const fromTime: string[] = [];
    const byTime = await se.subscribe('audit', (_s, _t, v) => fromTime.push(v), {
      durable: 'replay-time',
      fromTime: since,
    });
    await until(() => fromSeq.length === 2 && fromTime.length === 1);
    await sleep(300);
    expect(s2).toBeGreaterThan(s1 as number);
    expect(fromSeq).toEqual(['a2', 'a3']);
    expect(fromTime).toEqual(['a3']);
    await Promise.all([bySeq.unsubscribe(), byTime.unsubscribe()]);
  });

  it('refuses bad names, a name in use on another topic, acks of plain subscriptions, and nodes that keep no events', async () => {
    const se = eventsAt(nodes[0] as RunningSharingServer);
    await expect(se.subscribe('t', () => undefined, { durable: 'has space' })).rejects.toMatchObject({
      code: 3,
      reason: 'BAD_DURABLE_NAME',
    });
    await expect(se.subscribe('elsewhere', () => undefined, { durable: 'billing' })).rejects.toMatchObject({
      code: 9,
      reason: 'DURABLE_TOPIC_MISMATCH',
    });

    const sub = await se.subscribe('t', () => undefined);
    const stub = se.connection.stub;
    await expect(
      unary(stub.ack.bind(stub), AckRequest.fromPartial({ subscriptionId: sub.id, sequence: 1 })),
    ).rejects.toMatchObject({ code: 9, reason: 'NOT_DURABLE' });
    await expect(
      unary(stub.ack.bind(stub), AckRequest.fromPartial({ subscriptionId: 'nope', sequence: 1 })),
    ).rejects.toMatchObject({ code: 5, reason: 'SUBSCRIPTION_NOT_FOUND' });
    await sub.unsubscribe();

    const off = eventsAt(plain);
    await expect(off.subscribe('t', () => undefined, { durable: 'd' })).rejects.toMatchObject({
      code: 9,
      reason: 'DURABLE_EVENTS_OFF',
    });
    expect(await off.publish('t', 'fire and forget')).toBeUndefined();
  });
});
