import {
  AllocationType,
  type CapSet,
  DepotServiceClient,
  Reliability,
  type StoreResponse,
} from '@backplane/proto/ibp';
import { BackplaneError, serverStream, unary } from '@backplane/runtime';
import { credentials } from '@grpc/grpc-js';

export function depotClient(address: string): DepotServiceClient {
  return new DepotServiceClient(address, credentials.createInsecure());
}

export async function allocate(
  client: DepotServiceClient,
  size: number,
  type = AllocationType.ALLOCATION_TYPE_BYTE_ARRAY,
  reliability = Reliability.RELIABILITY_STABLE,
): Promise<CapSet> {
  const res = await unary(client.allocate.bind(client), {
    size,
    attributes: { duration: 0, reliability, type },
  });
  if (!res.caps) throw new Error('no caps');
  return res.caps;
}

/** Store over gRPC: the first message names the capability and size, then chunks follow. */
export function storeVia(
  client: DepotServiceClient,
  writeCap: string,
  data: Buffer,
  chunk = 256 * 1024,
): Promise<StoreResponse> {
  return new Promise((resolve, reject) => {
    const call = client.store((err, res) => (err ? reject(BackplaneError.from(err)) : resolve(res)));
    call.write({ writeCap, size: data.length, data: Buffer.alloc(0) });
    for (let i = 0; i < data.length; i += chunk)
      call.write({ writeCap: '', size: 0, data: data.subarray(i, i + chunk) });
    call.end();
  });
}

export async function readVia(
  client: DepotServiceClient,
  readCap: string,
  offset = 0,
  size = -1,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const r of serverStream(client.read.bind(client), { readCap, offset, size })) parts.push(r.data);
  return Buffer.concat(parts);
}
