// Finding the building blocks by name, as every process of the farm does: only the name server's address
// is configured (BACKPLANE_NAMESERVER); the depot, the tuple space, sharing and the ds coordinator
// registered themselves there when they started.
import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { type SharedEvents, type SharedProperties, SharingFactory } from '@backplane/sharing-client';
import { type Space, TupleSpaceClient } from '@backplane/tuplespace-client';
import { status } from '@grpc/grpc-js';

export interface Backplane {
  names: NamingClient;
  ibp: IbpClient;
  ts: TupleSpaceClient;
  jobs: Space;
  props: SharedProperties;
  events: SharedEvents;
  dsCoordinator: string;
  close(): void;
}

/** The farm's names and keys. */
export const FARM = {
  /** The tuple space jobs and results live in (open to everyone). */
  space: 'default',
  /** SharedEvents topic of progress messages. */
  progress: 'jobfarm.progress',
  /** SharedProperties counters. */
  nextId: 'jobfarm.next-id',
  submitted: 'jobfarm.submitted',
  completed: 'jobfarm.completed',
  /** The ds service clients submit jobs through. */
  dsService: 'jobs',
} as const;

export async function where(names: NamingClient, name: string): Promise<string> {
  const r = await names.resolve(name, {}, { timeoutMs: 5000 });
  const loc = r.binding?.location;
  if (!loc) throw new Error(`${name} is not bound in the name server`);
  return `${loc.host}:${loc.port}`;
}

export async function connectBackplane(): Promise<Backplane> {
  const names = new NamingClient();
  const [depot, tuplespace, sharing, dsCoordinator] = await Promise.all(
    ['ibp-depot', 'tuplespace', 'sharing', 'ds-coordinator'].map((n) => where(names, n)),
  );
  const ibp = new IbpClient({ depot });
  const ts = new TupleSpaceClient(tuplespace);
  const url = `boot@${sharing}`;
  return {
    names,
    ibp,
    ts,
    jobs: ts.space(FARM.space),
    props: SharingFactory.createSharedProperties(url),
    events: SharingFactory.createSharedEvents(url),
    dsCoordinator: dsCoordinator as string,
    close() {
      ibp.close();
      ts.close();
      names.close();
      SharingFactory.closeAll();
    },
  };
}

/** Adds `by` to a counter in SharedProperties with compare-and-set, retrying on a concurrent change. */
export async function increment(props: SharedProperties, key: string, by = 1): Promise<number> {
  for (;;) {
    const cur = await props.get(key);
    const next = Number(cur?.text() ?? 0) + by;
    try {
      await props.compareAndSet(key, cur?.revision ?? 0, String(next));
      return next;
    } catch (err) {
      // FAILED_PRECONDITION: another process changed the counter first; read it again
      if ((err as { code?: number }).code !== status.FAILED_PRECONDITION) throw err;
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
