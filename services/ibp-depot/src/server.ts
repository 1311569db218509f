import type { BlockList } from 'node:net';
import { crc32 } from 'node:zlib';
import {
  CapType,
  FastDepotServiceService,
  type Attributes as PbAttributes,
  ManageCommand as PbCommand,
  Reliability as PbReliability,
  AllocationType as PbType,
  type StoreRequest,
} from '@backplane/proto/ibp';
import {
  type Audiences,
  BackplaneError,
  type CallContext,
  type PeerAccess,
  PLAIN_PEER,
  type ServiceRegistration,
  service,
} from '@backplane/runtime';
import type { Attributes, CapSet, Chunk, Depot, ManageCommand } from './depot';
import type { AllocationType, Reliability } from './records';
import { copy, deliver, remoteStore } from './transfer';

const TYPES: Record<number, AllocationType> = {
  [PbType.ALLOCATION_TYPE_BYTE_ARRAY]: 'BYTE_ARRAY',
  [PbType.ALLOCATION_TYPE_BUFFER]: 'BUFFER',
  [PbType.ALLOCATION_TYPE_FIFO]: 'FIFO',
  [PbType.ALLOCATION_TYPE_CIRCULAR_QUEUE]: 'CIRCULAR_QUEUE',
};
const RELIABILITIES: Record<number, Reliability> = {
  [PbReliability.RELIABILITY_STABLE]: 'STABLE',
  [PbReliability.RELIABILITY_VOLATILE]: 'VOLATILE',
};
const COMMANDS: Record<number, ManageCommand> = {
  [PbCommand.MANAGE_COMMAND_INCR]: 'INCR',
  [PbCommand.MANAGE_COMMAND_DECR]: 'DECR',
  [PbCommand.MANAGE_COMMAND_PROBE]: 'PROBE',
  [PbCommand.MANAGE_COMMAND_CHNG]: 'CHNG',
};
const invert = <T extends string>(m: Record<number, T>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [v, Number(k)])) as Record<T, number>;
const TYPE_TO_PB = invert(TYPES);
const RELIABILITY_TO_PB = invert(RELIABILITIES);

function attributesFromProto(a: PbAttributes | undefined): Attributes {
  if (!a) throw BackplaneError.badParameter('attributes are required (duration, reliability, type)');
  const type = TYPES[a.type];
  const reliability = RELIABILITIES[a.reliability];
  if (!type)
    throw BackplaneError.badParameter('attributes.type must be BYTE_ARRAY, BUFFER, FIFO or CIRCULAR_QUEUE', {
      reason: 'IBP_E_INV_PAR_ATTR',
    });
  if (!reliability)
    throw BackplaneError.badParameter('attributes.reliability must be STABLE or VOLATILE', {
      reason: 'IBP_E_INV_PAR_ATTR',
    });
  return { duration: a.duration, reliability, type };
}

/** The first message of a Store stream names the capability and size; every message may carry data. */
async function* chunksOf(first: StoreRequest, rest: AsyncIterator<StoreRequest>): AsyncGenerator<Chunk> {
  let index = 0;
  let message = first;
  for (;;) {
    // a chunk damaged in transit fails the whole store, before the depot applies any of it
    if (message.crc32 !== undefined && crc32(message.data) !== message.crc32) {
      throw BackplaneError.badParameter(`chunk ${index} does not match its crc32`, {
        reason: 'CHECKSUM_MISMATCH',
      });
    }
    if (message.data.length > 0) yield { data: message.data, crc32: message.crc32 };
    const next = await rest.next();
    if (next.done) return;
    if (next.value.writeCap !== '')
      throw BackplaneError.badParameter('write_cap belongs in the first message only');
    message = next.value;
    index++;
  }
}

/** The most a ReadSmall answers with: a 1 MiB message fits any client's default receive limit (4 MiB). */
export const READ_SMALL_MAX = 1024 * 1024;

/** One message's data as a store chunk, refused if it does not match the CRC-32 the caller sent. */
function checkedChunk(data: Buffer, crc: number | undefined): Chunk {
  if (crc !== undefined && crc32(data) !== crc) {
    throw BackplaneError.badParameter('the data does not match its crc32', { reason: 'CHECKSUM_MISMATCH' });
  }
  return { data, crc32: crc };
}

/**
 * DepotService RPCs ↔ Depot; `peer` is how Copy calls the target depot (TLS, token). With `audiences`, a
 * caller outside the depot's network (one that did not dial its advertise host) gets capabilities that
 * name the depot's external address, the one it can dial.
 */
export function depotService(
  depot: Depot,
  allowed: BlockList,
  peer: PeerAccess = PLAIN_PEER,
  audiences?: Audiences,
): ServiceRegistration {
  const capFor = (ctx: CallContext) =>
    audiences?.isExternal(ctx)
      ? (cap: string) =>
          cap.replace(/^ibp:\/\/([^/]+)\//, (_m, at: string) => `ibp://${audiences.addressFor(ctx, at)}/`)
      : (cap: string) => cap;
  const capsFor = (ctx: CallContext, caps: CapSet): CapSet => {
    const map = capFor(ctx);
    return { readCap: map(caps.readCap), writeCap: map(caps.writeCap), manageCap: map(caps.manageCap) };
  };
  return service(FastDepotServiceService, {
    allocate: async (req, ctx) => {
      const attributes = attributesFromProto(req.attributes);
      if (req.data === undefined) return { caps: capsFor(ctx, await depot.allocate(req.size, attributes)) };
      const chunk = checkedChunk(req.data, req.crc32);
      const r = await depot.allocateWith(req.size, attributes, chunk, ctx.signal);
      return { ...r, caps: capsFor(ctx, r.caps) };
    },

    storeSmall: async (req, ctx) =>
      depot.store(req.writeCap, req.data.length, [checkedChunk(req.data, req.crc32)], ctx.signal),

    readSmall: async (req, ctx) => {
      const parts: Buffer[] = [];
      const tooLarge = (n: number) => {
        if (n > READ_SMALL_MAX) {
          throw BackplaneError.badParameter(
            `ReadSmall returns at most ${READ_SMALL_MAX} bytes and this read is ${n}; use Read`,
            { reason: 'READ_TOO_LARGE' },
          );
        }
      };
      for await (const data of depot.read(req.readCap, req.offset, req.size, ctx.signal, {
        onLength: tooLarge,
      })) {
        parts.push(data);
      }
      const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      return { data, crc32: crc32(data) };
    },

    store: async (requests, ctx) => {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done)
        throw BackplaneError.badParameter(
          'an empty Store stream: the first message must carry write_cap and size',
        );
      const r = await depot.store(
        first.value.writeCap,
        first.value.size,
        chunksOf(first.value, it),
        ctx.signal,
      );
      return { stored: r.stored, currentSize: r.currentSize, crc32: r.crc32 };
    },

    read: async (req, sink, ctx) => {
      for await (const data of depot.read(req.readCap, req.offset, req.size, ctx.signal)) {
        await sink.send({ data, crc32: crc32(data) });
      }
    },

    copy: async (req, ctx) => ({
      copied: await copy(
        depot,
        req.sourceReadCap,
        req.targetWriteCap,
        req.offset,
        req.size,
        allowed,
        ctx.signal,
        peer,
      ),
    }),

    deliver: async (req, ctx) => ({
      delivered: await deliver(
        depot,
        req.readCap,
        req.host,
        req.port,
        req.offset,
        req.size,
        allowed,
        ctx.signal,
      ),
    }),

    remoteStore: async (req, ctx) => ({
      stored: await remoteStore(depot, req.writeCap, req.host, req.port, req.size, allowed, ctx.signal),
    }),

    manage: async (req, ctx) => {
      const command = COMMANDS[req.command];
      if (!command) throw BackplaneError.badParameter('command must be INCR, DECR, PROBE or CHNG');
      const capType =
        req.capType === CapType.CAP_TYPE_READ
          ? 'READ'
          : req.capType === CapType.CAP_TYPE_WRITE
            ? 'WRITE'
            : undefined;
      const a = req.attributes;
      const p = await depot.manage(
        req.manageCap,
        command,
        capType,
        {
          attributes: a
            ? {
                duration: a.duration === -1 ? undefined : a.duration,
                reliability: RELIABILITIES[a.reliability],
                type: TYPES[a.type],
              }
            : undefined,
          size: req.size,
        },
        ctx.signal,
      );
      return {
        readRefCount: p.readRefCount,
        writeRefCount: p.writeRefCount,
        currentSize: p.currentSize,
        maxSize: p.maxSize,
        attributes: {
          duration: p.attributes.duration,
          reliability: RELIABILITY_TO_PB[p.attributes.reliability],
          type: TYPE_TO_PB[p.attributes.type],
        },
        timeLeft: p.timeLeft,
      };
    },

    derive: async (req, ctx) => ({
      readCap: capFor(ctx)(await depot.derive(req.readCap, req.offset, req.length, req.duration)),
    }),

    revoke: async (req) => {
      await depot.revoke(req.manageCap, req.derivedCap);
      return {};
    },

    verify: async (req) => depot.verify(req.readCap),

    status: async () => {
      const s = depot.status();
      return {
        stable: s.stable,
        volatile: s.volatile,
        maxAllocationSize: Math.max(s.stable.capacity, s.volatile.capacity),
        maxDurationSeconds: s.maxDurationSeconds,
      };
    },
  });
}
