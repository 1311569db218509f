import { RELAY_MALLOC_ENV } from '@backplane/runtime';

/**
 * Every service `backplane up` starts, in start order (the name server first: the others register with
 * it). A new service plugs in with one entry here.
 */
export interface ServiceEntry {
  /** Folder under services/ and the name it is published under. */
  name: string;
  /** npm package holding the service. */
  package: string;
  /** Entry point inside the package. */
  main: string;
  /** Default port (its own well-known port). */
  port: number;
  /** Fully-qualified gRPC service names it serves. */
  grpcServices: string[];
  /** Extra environment for the distributed engine (`backplane up --nats`). */
  natsEnv?: (natsUrl: string) => Record<string, string>;
  /** Process environment it wants at start (the caller's own environment overrides it). */
  env?: Readonly<Record<string, string>>;
}

export const SERVICES: ServiceEntry[] = [
  {
    name: 'name-server',
    package: '@backplane/name-server',
    main: 'dist/main.js',
    port: 7000,
    grpcServices: ['backplane.naming.v1.NamingService'],
  },
  {
    name: 'ibp-depot',
    package: '@backplane/ibp-depot',
    main: 'dist/main.js',
    port: 6714,
    grpcServices: ['backplane.ibp.v1.DepotService'],
  },
  {
    name: 'tuplespace',
    package: '@backplane/tuplespace',
    main: 'dist/main.js',
    port: 8200,
    grpcServices: ['backplane.tuplespace.v1.TupleSpaceService'],
  },
  {
    name: 'sharing',
    package: '@backplane/sharing',
    main: 'dist/main.js',
    port: 8400,
    grpcServices: ['backplane.sharing.v1.SharingService'],
    natsEnv: (natsUrl) => ({ BACKPLANE_NATS_URL: natsUrl }),
  },
  {
    name: 'ds-coordinator',
    package: '@backplane/ds-coordinator',
    main: 'dist/main.js',
    port: 7400,
    grpcServices: ['backplane.ds.v1.CoordinatorService'],
    env: RELAY_MALLOC_ENV,
  },
];
