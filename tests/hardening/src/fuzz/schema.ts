import { readFileSync } from 'node:fs';
import { descriptorSetPath } from '@backplane/proto';
import { createFileRegistry, type DescMessage, type DescMethod, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

/** One RPC of the contract, as the fuzzer sees it. */
export interface FuzzMethod {
  /** Fully-qualified service name, e.g. `backplane.ibp.v1.IbpService`. */
  service: string;
  name: string;
  /** The HTTP/2 path, e.g. `/backplane.ibp.v1.IbpService/Allocate`. */
  path: string;
  kind: DescMethod['methodKind'];
  input: DescMessage;
}

/** Every method of every service in proto/ (as buf compiled it), by proto package. */
export function contractMethods(): FuzzMethod[] {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath));
  const registry = createFileRegistry(set);
  const out: FuzzMethod[] = [];
  for (const file of registry.files) {
    for (const svc of file.services) {
      for (const m of svc.methods) {
        out.push({
          service: svc.typeName,
          name: m.name,
          path: `/${svc.typeName}/${m.name}`,
          kind: m.methodKind,
          input: m.input,
        });
      }
    }
  }
  return out;
}

/** The methods of the services in one proto package, e.g. `backplane.ibp.v1`. */
export function methodsOf(protoPackage: string): FuzzMethod[] {
  return contractMethods().filter((m) => m.service.startsWith(`${protoPackage}.`));
}
