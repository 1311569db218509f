import { BackplaneError } from '@backplane/client-core';
import type { DsClient } from './ds-client';

/** What a policy may know about the targets besides their URLs. */
export interface TargetInfo {
  /** Clients at each target now (from the coordinator). */
  readonly clients: ReadonlyMap<string, number>;
}

/**
 * The seed's handoff_policy: picks the node a client is handed to. Throw DoesNotExist (a NOT_FOUND
 * BackplaneError) when there is no possible target; whatever a policy throws reaches handoff()'s caller.
 */
export interface HandoffPolicy {
  getTarget(client: DsClient, options: readonly string[], info: TargetInfo): string | Promise<string>;
}

function noTargets(): BackplaneError {
  return BackplaneError.notFound('No possible targets: no other node is attached under this name', {
    reason: 'NO_TARGETS',
  });
}

/** The seed's example: always the first option. */
export class PickFirstHandoffPolicy implements HandoffPolicy {
  getTarget(_client: DsClient, options: readonly string[]): string {
    const first = options[0];
    if (first === undefined) throw noTargets();
    return first;
  }
}

/** The seed's round_robin_handoff_policy: the targets in turn (in URL order, so the turn is stable). */
export class RoundRobinHandoffPolicy implements HandoffPolicy {
  private next = 0;

  getTarget(_client: DsClient, options: readonly string[]): string {
    if (options.length === 0) throw noTargets();
    const sorted = [...options].sort();
    return sorted[this.next++ % sorted.length] as string;
  }
}

/** The target with the fewest clients (ties: the first in URL order). */
export class LeastClientsHandoffPolicy implements HandoffPolicy {
  getTarget(_client: DsClient, options: readonly string[], info: TargetInfo): string {
    if (options.length === 0) throw noTargets();
    let best: string | undefined;
    for (const url of [...options].sort()) {
      if (best === undefined || (info.clients.get(url) ?? 0) < (info.clients.get(best) ?? 0)) best = url;
    }
    return best as string;
  }
}
