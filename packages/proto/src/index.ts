import { join } from 'node:path';

/** Services are exported per proto package: `@backplane/proto/naming`, `@backplane/proto/echo`. */
export * as ds from './ds';
export * as echo from './echo';
export * as ibp from './ibp';
export * as naming from './naming';
export * as pipeline from './pipeline';
export * as tuplespace from './tuplespace';

/**
 * Path of the FileDescriptorSet (built by `buf build`) that holds every Backplane proto file and its
 * imports. The runtime feeds it to server reflection so grpcurl and clients in any language can discover
 * each service.
 */
export const descriptorSetPath: string = join(__dirname, '..', 'descriptors.binpb');
