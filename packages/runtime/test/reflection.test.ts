import { readFileSync } from 'node:fs';
import { descriptorSetPath } from '@backplane/proto';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { reflectionIndex } from '../src/reflection';

describe('reflectionIndex', () => {
  const index = reflectionIndex(readFileSync(descriptorSetPath));

  it('keeps each file as buf compiled it, imports included', () => {
    const naming = fromBinary(
      FileDescriptorProtoSchema,
      index.files.get('backplane/naming/v1/naming.proto') as Uint8Array,
    );
    expect(naming.dependency).toEqual(['google/protobuf/timestamp.proto']);
    expect(index.files.has('google/protobuf/timestamp.proto')).toBe(true);
  });

  it('finds the file of services, methods, messages and nested types', () => {
    expect(index.symbols.get('backplane.naming.v1.NamingService')).toBe('backplane/naming/v1/naming.proto');
    expect(index.symbols.get('backplane.naming.v1.NamingService.Resolve')).toBe(
      'backplane/naming/v1/naming.proto',
    );
    expect(index.symbols.get('backplane.ibp.v1.StoreSmallRequest')).toBe('backplane/ibp/v1/ibp.proto');
    expect(index.symbols.get('google.protobuf.Timestamp')).toBe('google/protobuf/timestamp.proto');
  });
});
