import { dirname, join } from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type DescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { type Server, type ServerDuplexStream, type ServiceDefinition, status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) that answers with the descriptors exactly as buf
 * compiled them. @grpc/reflection re-encodes files through protobufjs, which drops their imports
 * (grpc/grpc-node#2595): a client then cannot resolve google.protobuf.Timestamp in naming.proto, and
 * grpcurl or a Python reflection client fails to build the file.
 */

interface Index {
  /** file name → the file's bytes */
  files: Map<string, Uint8Array>;
  /** file name → the files it imports */
  imports: Map<string, string[]>;
  /** fully-qualified symbol (message, enum, service, method) → the file that declares it */
  symbols: Map<string, string>;
}

function indexMessages(prefix: string, messages: DescriptorProto[], file: string, index: Index): void {
  for (const m of messages) {
    const name = `${prefix}${m.name}`;
    index.symbols.set(name, file);
    for (const e of m.enumType) index.symbols.set(`${name}.${e.name}`, file);
    indexMessages(`${name}.`, m.nestedType, file, index);
  }
}

function addFile(index: Index, file: FileDescriptorProto, bytes: Uint8Array): void {
  if (index.files.has(file.name)) return;
  index.files.set(file.name, bytes);
  index.imports.set(file.name, file.dependency);
  const prefix = file.package ? `${file.package}.` : '';
  indexMessages(prefix, file.messageType, file.name, index);
  for (const e of file.enumType) index.symbols.set(`${prefix}${e.name}`, file.name);
  for (const s of file.service) {
    index.symbols.set(`${prefix}${s.name}`, file.name);
    for (const m of s.method) index.symbols.set(`${prefix}${s.name}.${m.name}`, file.name);
  }
}

/** A descriptor set's files; plus `extra` files as protobufjs encodes them (health.proto: no imports). */
export function reflectionIndex(descriptorSet: Uint8Array, extra: Uint8Array[] = []): Index {
  const index: Index = { files: new Map(), imports: new Map(), symbols: new Map() };
  for (const file of fromBinary(FileDescriptorSetSchema, descriptorSet).file) {
    addFile(index, file, toBinary(FileDescriptorProtoSchema, file));
  }
  for (const bytes of extra) addFile(index, fromBinary(FileDescriptorProtoSchema, bytes), bytes);
  return index;
}

/** The file and every file it imports, transitively, the file itself first. */
function withImports(index: Index, name: string): Buffer[] {
  const out: string[] = [];
  const visit = (n: string) => {
    if (out.includes(n) || !index.files.has(n)) return;
    out.push(n);
    for (const d of index.imports.get(n) ?? []) visit(d);
  };
  visit(name);
  return out.map((n) => Buffer.from(index.files.get(n) as Uint8Array));
}

interface ReflectionRequest {
  host?: string;
  messageRequest?: string;
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType?: string; extensionNumber?: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

function answer(index: Index, services: string[], req: ReflectionRequest): Record<string, unknown> {
  const base = { validHost: req.host ?? '', originalRequest: req };
  const notFound = (what: string) => ({
    ...base,
    errorResponse: { errorCode: status.NOT_FOUND, errorMessage: `${what} not found` },
  });
  switch (req.messageRequest) {
    case 'listServices':
      return { ...base, listServicesResponse: { service: services.map((name) => ({ name })) } };
    case 'fileByFilename': {
      const name = req.fileByFilename ?? '';
      if (!index.files.has(name)) return notFound(`file ${name}`);
      return { ...base, fileDescriptorResponse: { fileDescriptorProto: withImports(index, name) } };
    }
    case 'fileContainingSymbol': {
      const symbol = (req.fileContainingSymbol ?? '').replace(/^\./, '');
      const file = index.symbols.get(symbol);
      if (!file) return notFound(`symbol ${symbol}`);
      return { ...base, fileDescriptorResponse: { fileDescriptorProto: withImports(index, file) } };
    }
    case 'fileContainingExtension':
      // no Backplane proto declares extensions
      return notFound(`extension ${req.fileContainingExtension?.extensionNumber ?? ''}`);
    case 'allExtensionNumbersOfType': {
      const type = req.allExtensionNumbersOfType ?? '';
      if (!index.symbols.has(type)) return notFound(`type ${type}`);
      return { ...base, allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: [] } };
    }
    default:
      return {
        ...base,
        errorResponse: { errorCode: status.UNIMPLEMENTED, errorMessage: 'unknown reflection request' },
      };
  }
}

let protocols: ServiceDefinition[] | undefined;
/** The ServerReflection service definitions (v1 and v1alpha), from the .proto files @grpc/reflection ships. */
function reflectionDefinitions(): ServiceDefinition[] {
  if (protocols) return protocols;
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  // a proto-loader package definition maps each service's full name to its grpc-js service definition
  protocols = ['v1', 'v1alpha'].map(
    (version) =>
      loadSync(`grpc/reflection/${version}/reflection.proto`, {
        includeDirs: [root],
        longs: Number,
        enums: String,
        oneofs: true,
      })[`grpc.reflection.${version}.ServerReflection`] as unknown as ServiceDefinition,
  );
  return protocols;
}

/** Adds grpc.reflection.v1 and v1alpha to `server`, listing `services`. */
export function addReflection(server: Server, index: Index, services: string[]): void {
  const handler = (stream: ServerDuplexStream<ReflectionRequest, unknown>) => {
    stream.on('data', (req: ReflectionRequest) => stream.write(answer(index, services, req)));
    stream.on('end', () => stream.end());
    stream.on('error', () => undefined);
  };
  for (const definition of reflectionDefinitions()) {
    server.addService(definition, { ServerReflectionInfo: handler });
  }
}
