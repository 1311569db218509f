import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { SharedEvents, SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { TupleSpaceClient, template, tuple } from '@backplane/tuplespace-client';
import type { ServiceName } from '../services';
import { TS_ADMIN } from '../services';

const deadline = (ms: number) => ({ deadline: new Date(Date.now() + ms) });

/** A service's benchmark operation and a call that blocks, with the concurrency `pnpm bench` uses. */
export interface Ops {
  benchConcurrency: number;
  op(i: number, deadlineMs: number): Promise<unknown>;
  /** A call that waits (until its deadline) without using CPU: a waiter, watch or subscription. */
  wait(i: number, deadlineMs: number): Promise<unknown>;
  close(): void;
}

export async function opsFor(name: Exclude<ServiceName, 'ds-coordinator'>, address: string): Promise<Ops> {
  switch (name) {
    case 'name-server': {
      const c = new NamingClient({ nameServer: address });
      await c.bind('overload', { host: '10.0.0.1', port: 1, metadata: {} });
      return {
        benchConcurrency: 64,
        op: (_i, ms) => c.resolve('overload', {}, deadline(ms)),
        wait: async (i, ms) => {
          for await (const _ of c.watch(`never-${i}`, {}, deadline(ms))) {
            // nothing is bound under that name
          }
        },
        close: () => c.close(),
      };
    }
    case 'ibp-depot': {
      const c = new IbpClient({ depot: address });
      const data = Buffer.alloc(4096, 7);
      const fifo = await c.allocate(1024, { type: 'FIFO' });
      return {
        benchConcurrency: 16,
        op: async (_i, ms) => {
          const caps = await c.allocate(data.length, { data, duration: 60 }, address, deadline(ms));
          await c.read(caps.readCap, deadline(ms));
          // and freed (the read count drops to 0), so the depot holds as many areas after the load as
          // before it: "after" measures recovery, not a depot grown by the 10x load's areas
          await c.manage(caps.manageCap, 'DECR', { capType: 'READ' }, deadline(ms));
        },
        wait: (_i, ms) => c.read(fifo.readCap, { size: 1000, ...deadline(ms) }),
        close: () => c.close(),
      };
    }
    case 'tuplespace': {
      const c = new TupleSpaceClient(address, TS_ADMIN);
      const space = c.space('default');
      return {
        benchConcurrency: 16,
        op: async (i, ms) => {
          await space.write(tuple('job', i), deadline(ms));
          await space.take(template('job', i), deadline(ms));
        },
        wait: (i, ms) => space.waitToTake(template('never', i), deadline(ms)),
        close: () => c.close(),
      };
    }
    case 'sharing': {
      const conn = new SharingConnection(address);
      const props = new SharedProperties(conn);
      const events = new SharedEvents(conn);
      return {
        benchConcurrency: 64,
        op: async (i, ms) => {
          await props.put(`k/${i % 1000}`, 'v', deadline(ms));
          await props.get(`k/${i % 1000}`, deadline(ms));
        },
        wait: async (i, ms) => {
          const sub = await events.subscribe(`never.${i}`, () => undefined);
          await new Promise((r) => setTimeout(r, ms));
          await sub.unsubscribe();
        },
        close: () => conn.close(),
      };
    }
  }
}
