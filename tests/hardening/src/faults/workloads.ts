import { createHash } from 'node:crypto';
import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { SharedEvents, SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { TupleSpaceClient, template, tuple } from '@backplane/tuplespace-client';
import { codeOf } from '../codes';
import type { ServiceName } from '../services';
import { TS_ADMIN } from '../services';
import type { ReadBack } from './readback';

/**
 * A workload that writes through a service's client while the service is killed and restarted. It
 * remembers every write the service acknowledged; verify() reads each back once the runs are over.
 */
export interface Workload {
  /** One write; records it if acknowledged, throws what the client threw otherwise. */
  step(i: number): Promise<void>;
  acknowledged(): number;
  /** Acknowledged writes that are missing or wrong, as descriptions; every read goes through `rb`. */
  verify(rb: ReadBack): Promise<string[]>;
  /**
   * Starts a call that blocks (a waiting take, a FIFO read, a watch, a subscription) just before a kill;
   * resolves with how it ended or resumed, e.g. "UNAVAILABLE" or "resumed".
   */
  blocked?(): Promise<string>;
  close(): Promise<void>;
}

const deadline = (ms = 3000) => ({ deadline: new Date(Date.now() + ms) });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function nameServer(address: string): Workload {
  const client = new NamingClient({ nameServer: address });
  const acked = new Map<string, number>();
  const run = Math.random().toString(36).slice(2, 8);
  return {
    async step(i) {
      const name = `w-${run}-${i}`;
      await client.bind(name, { host: '10.1.0.1', port: 1 + (i % 60_000), metadata: {} }, {}, deadline());
      acked.set(name, 1 + (i % 60_000));
    },
    acknowledged: () => acked.size,
    async verify(rb) {
      const missing: string[] = [];
      for (const [name, port] of acked) {
        const r = await rb.call(() => client.resolve(name, {}, deadline()));
        if (r instanceof Error) missing.push(`${name}: ${r.message}`);
        else if ((r as { binding?: { location?: { port?: number } } }).binding?.location?.port !== port)
          missing.push(`${name}: wrong port`);
      }
      return missing;
    },
    async blocked() {
      try {
        for await (const _ of client.watch(`w-${run}-never`, {}, deadline(30_000))) {
          // events until the server goes away
        }
        return 'ended';
      } catch (err) {
        return codeOf(err);
      }
    },
    async close() {
      client.close();
    },
  };
}

function depot(address: string): Workload {
  const client = new IbpClient({ depot: address });
  const acked: Array<{ cap: string; hash: string; size: number }> = [];
  return {
    async step(i) {
      const data = Buffer.alloc(1024 + ((i * 7919) % 60_000), i % 251);
      const caps = await client.allocate(data.length, { reliability: 'STABLE', data }, address, deadline());
      acked.push({ cap: caps.readCap, hash: sha(data), size: data.length });
    },
    acknowledged: () => acked.length,
    async verify(rb) {
      const missing: string[] = [];
      for (const [i, a] of acked.entries()) {
        const got = await rb.call(() => client.read(a.cap, deadline(10_000)));
        if (got instanceof Error) missing.push(`allocation ${i}: ${got.message}`);
        else if (sha(got as Buffer) !== a.hash)
          missing.push(`allocation ${i}: ${(got as Buffer).length} bytes differ`);
      }
      return missing;
    },
    async blocked() {
      const fifo = await client.allocate(1024, { type: 'FIFO' }, address, deadline());
      try {
        await client.read(fifo.readCap, { size: 10, ...deadline(30_000) });
        return 'returned';
      } catch (err) {
        return codeOf(err);
      }
    },
    async close() {
      client.close();
    },
  };
}

function tupleSpace(address: string): Workload {
  const admin = new TupleSpaceClient(address, TS_ADMIN);
  const space = admin.space('default');
  const acked: number[] = [];
  const run = Math.random().toString(36).slice(2, 8);
  return {
    // the key goes first: the space indexes first fields, so each read-back is a lookup. With ('w', run, i)
    // every count scanned the whole space, and reading back 93,000 tuples took over 15 minutes
    async step(i) {
      await space.write(tuple(`w/${run}/${i}`, i), deadline());
      acked.push(i);
    },
    acknowledged: () => acked.length,
    async verify(rb) {
      const missing: string[] = [];
      for (const i of acked) {
        const n = await rb.call(() => space.count(template(`w/${run}/${i}`, i), deadline()));
        if (n !== 1) missing.push(`tuple ${i}: ${n instanceof Error ? n.message : `count ${n}`}`);
      }
      return missing;
    },
    async blocked() {
      try {
        await space.waitToTake(template('never', run), deadline(30_000));
        return 'returned';
      } catch (err) {
        return codeOf(err);
      }
    },
    async close() {
      admin.close();
    },
  };
}

/** Properties and events; `url` may name several sharing nodes (`boot@a,b` style bootstrap). */
export function sharing(url: string): Workload {
  const connection = new SharingConnection(url);
  const props = new SharedProperties(connection);
  const events = new SharedEvents(connection);
  const acked = new Map<string, { value: string; revision: number }>();
  const run = Math.random().toString(36).slice(2, 8);
  return {
    async step(i) {
      const key = `w/${run}/${i}`;
      const value = `value-${i}`;
      const revision = await props.put(key, value, deadline());
      acked.set(key, { value, revision });
    },
    acknowledged: () => acked.size,
    async verify(rb) {
      const missing: string[] = [];
      for (const [key, want] of acked) {
        const got = await rb.call(() => props.get(key, deadline()));
        if (got instanceof Error) missing.push(`${key}: ${got.message}`);
        else if (!got) missing.push(`${key}: gone`);
        else if ((got as { value: Buffer }).value.toString() !== want.value)
          missing.push(`${key}: wrong value`);
      }
      return missing;
    },
    /** A subscriber across the kill: it must get an event published after the restart. */
    async blocked() {
      const topic = `faults.${run}`;
      let got = 0;
      const sub = await events.subscribe(topic, () => {
        got += 1;
      });
      const until = Date.now() + 30_000;
      try {
        while (Date.now() < until) {
          await events.publish(topic, 'after', deadline(1000)).catch(() => undefined);
          if (got > 0) return 'resumed';
          await new Promise((r) => setTimeout(r, 300));
        }
        return 'no event after the restart';
      } finally {
        await sub.unsubscribe().catch(() => undefined);
      }
    },
    async close() {
      connection.close();
    },
  };
}

export function workloadFor(name: Exclude<ServiceName, 'ds-coordinator'>, address: string): Workload {
  switch (name) {
    case 'name-server':
      return nameServer(address);
    case 'ibp-depot':
      return depot(address);
    case 'tuplespace':
      return tupleSpace(address);
    case 'sharing':
      return sharing(address);
  }
}
