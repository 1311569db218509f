import type { DsService } from '@backplane/ds-client';
import { BackplaneError, statusName } from '@backplane/runtime';

/** The status name of whatever a client call threw, e.g. "UNAVAILABLE". */
export function codeOf(err: unknown): string {
  return statusName(BackplaneError.from(err).code);
}

/** Serves every stream of a ds node by echoing it, until the node closes. */
export async function echoNode(node: DsService): Promise<void> {
  for (;;) {
    const stream = await node.serve().catch(() => undefined);
    if (!stream) return;
    stream.on('error', () => undefined);
    stream.pipe(stream);
  }
}
