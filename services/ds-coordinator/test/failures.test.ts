import type { Socket } from 'node:net';
import { DsAdmin } from '@backplane/ds-client';
import { CoordinatorServiceClient } from '@backplane/proto/ds';
import { waitFor } from '@backplane/runtime/testing';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { clientUrlOf, parseClientUrl } from '../src';
import { readBytes, startCoordinator, type TestCoordinator, tracker, write } from './helpers';

/** A node attached by hand that never dials its data connections (a node that hangs or cannot reach the data port). */
function muteNode(c: TestCoordinator, node: string) {
  const stub = new CoordinatorServiceClient(c.running.address, credentials.createInsecure());
  const call = stub.attach(new Metadata());
  const attached = new Promise<void>((resolve) => call.once('data', () => resolve()));
  // resolves when the coordinator grants this node a client's stream (which it will never dial)
  const granted = new Promise<void>((resolve) =>
    call.on('data', (m: { kind?: { $case: string } }) => {
      if (m.kind?.$case === 'newStream') resolve();
    }),
  );
  call.on('error', () => {});
  call.write({ kind: { $case: 'attach', attach: { name: 'default', node } } });
  return {
    url: `ds://${node}/default`,
    attached,
    granted,
    close: () => {
      call.cancel();
      stub.close();
    },
  };
}

/** The coordinator ended the client's connection (the client, half-open, sees its EOF). */
function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.readableEnded || s.destroyed) resolve();
    s.once('end', () => resolve());
    s.once('close', () => resolve());
  });
}

describe('ds failures around data connections and handoffs', () => {
  let c: TestCoordinator;
  const t = tracker(() => c);

  beforeEach(async () => {
    c = await startCoordinator({ dialTimeoutMs: 400 });
  });
  afterEach(async () => {
    await t.cleanup();
    await c.stop();
  });

  it('closes a client connection whose node never dials it, instead of leaving it open with no node', async () => {
    const mute = muteNode(c, 'mute');
    await mute.attached;
    try {
      const s = await t.client('127.0.9.1');
      s.resume();
      const t0 = Date.now();
      await closed(s);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      mute.close();
    }
  });

  it("answers a handoff to a node that never dials within the caller's timeout, and the client is not stuck", async () => {
    const a = await t.node();
    const mute = muteNode(c, 'mute-target');
    await mute.attached;
    try {
      const s = await t.client('127.0.9.2');
      const served = await a.serve(5000);
      await write(s, 'before');
      expect(String(await readBytes(served, 6))).toBe('before');
      const t0 = Date.now();
      await expect(a.handoffTo(mute.url, a.getClient(served), 250)).rejects.toEqual(
        expect.objectContaining({ code: status.DEADLINE_EXCEEDED }),
      );
      expect(Date.now() - t0).toBeLessThan(2000); // the caller's bound, not the coordinator's 10 s default
      s.resume();
      await closed(s); // the target never dialled: the connection closes once the dial times out
    } finally {
      mute.close();
    }
  });

  it('keeps a client whose node failed before dialling until another node takes it, past the dial timeout', async () => {
    const mute = muteNode(c, 'mute-dies');
    await mute.attached;
    const s = await t.client('127.0.9.7');
    await mute.granted;
    mute.close(); // its session ends: the client waits to be re-homed
    // well past the 400 ms dial timeout of the mute node's grant: that timeout must not close the client
    await new Promise((r) => setTimeout(r, 1000));
    expect(s.readableEnded || s.destroyed).toBe(false);
    const b = await t.node();
    const moved = await b.receiveHandoff(5000);
    expect(moved.arrival?.reason).toBe('node-failed');
    await write(s, 'still');
    expect(String(await readBytes(moved.getStreams()[0] as never, 5))).toBe('still');
  });

  it('does not wait for a stream the application closed just before a handoff', async () => {
    const a = await t.node();
    const b = await t.node();
    const s1 = await t.client('127.0.9.3');
    const first = await a.serve(5000);
    const s2 = await t.client('127.0.9.3');
    const second = await a.serve(5000);
    second.destroy();
    const t0 = Date.now();
    await a.handoffTo(b.url, a.getClient(first), 5000);
    expect(Date.now() - t0).toBeLessThan(2000);
    const got = await b.receiveHandoff(5000);
    await write(s1, 'moved');
    expect(String(await readBytes(got.getStreams()[0] as never, 5))).toBe('moved');
    void s2;
  });

  it('sends new clients to the other nodes while a node is drained, even when it has fewer clients', async () => {
    const a = await t.node();
    const early = [await t.client('127.0.9.4'), await t.client('127.0.9.5')];
    await a.serve(5000);
    await a.serve(5000);
    const b = await t.node();
    // b has a client of its own, so once a has given b one of its two, a has fewer clients than b
    const own = await t.client('127.0.9.8');
    await b.serve(5000);
    let arrived = 0;
    const arrivals = (async () => {
      for (let i = 0; i < 2; i++) {
        await b.receiveHandoff(10_000);
        arrived++;
      }
    })();
    const admin = new DsAdmin(c.running.address);
    const drained = (async () => {
      const moved = [];
      for await (const m of admin.drain(a.url, 1)) moved.push(m); // one client a second
      return moved;
    })();
    // mid-drain: the first client has moved, the second waits its turn (a second later): a has one
    // client, b two. least-clients alone would pick a; a node being drained takes no new client
    await waitFor(() => arrived === 1 && c.running.coordinator.node(a.url).draining > 0, 10_000, 5);
    const late = await t.client('127.0.9.6');
    const stream = await b.serve(5000);
    await write(late, 'late');
    expect(String(await readBytes(stream, 4))).toBe('late');
    expect((await drained).map((m) => m.targetUrl)).toEqual([b.url, b.url]);
    await arrivals;
    admin.close();
    void early;
    void own;
  });
});

describe('client URLs', () => {
  it('keep the zone of a link-local IPv6 address, and parse back', () => {
    const url = clientUrlOf('fe80::1%eth0');
    expect(url).toBe('ipv6://[fe80::1%eth0]');
    expect(parseClientUrl(url)).toBe('fe80::1%eth0');
    expect(parseClientUrl(clientUrlOf('127.0.0.5'))).toBe('::ffff:127.0.0.5');
    expect(() => parseClientUrl('ipv6://[fe80::1%eth0/x]')).toThrow();
  });
});
