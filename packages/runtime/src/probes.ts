import { dirname, join } from 'node:path';
import {
  type ChannelCredentials,
  type Client,
  credentials,
  loadPackageDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

type AnyClientCtor = new (address: string, creds: ChannelCredentials) => Client;

function loadClient(protoFile: string, includeDir: string, path: string[]): AnyClientCtor {
  const def = loadPackageDefinition(
    loadSync(protoFile, { includeDirs: [includeDir], keepCase: true, enums: String }),
  );
  let node: unknown = def;
  for (const part of path) node = (node as Record<string, unknown>)[part];
  return node as AnyClientCtor;
}

/** grpc.health.v1 Check against a running server: resolves to SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN. */
export function healthCheck(
  address: string,
  service = '',
  creds = credentials.createInsecure(),
): Promise<string> {
  const proto = join(
    dirname(require.resolve('grpc-health-check/package.json')),
    'proto',
    'health',
    'v1',
    'health.proto',
  );
  const Ctor = loadClient(proto, dirname(proto), ['grpc', 'health', 'v1', 'Health']);
  const client = new Ctor(address, creds) as Client & {
    check(req: object, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void): void;
  };
  return new Promise((resolve, reject) => {
    client.check({ service }, { deadline: new Date(Date.now() + 5000) }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    });
  });
}

/** The service names a server lists through gRPC server reflection (what `grpcurl list` prints). */
export function reflectionListServices(
  address: string,
  creds = credentials.createInsecure(),
): Promise<string[]> {
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const proto = join(root, 'grpc', 'reflection', 'v1', 'reflection.proto');
  const Ctor = loadClient(proto, root, ['grpc', 'reflection', 'v1', 'ServerReflection']);
  const client = new Ctor(address, creds) as Client & {
    ServerReflectionInfo(opts: object): NodeJS.ReadWriteStream & { end(): void; write(m: object): boolean };
  };
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo({ deadline: new Date(Date.now() + 5000) });
    call.on('data', (res: { list_services_response?: { service: Array<{ name: string }> } }) => {
      resolve((res.list_services_response?.service ?? []).map((s) => s.name).sort());
      call.end();
    });
    call.on('error', (err: Error) => reject(err));
    call.on('end', () => client.close());
    call.write({ list_services: '' });
  });
}
