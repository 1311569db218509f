import type { Binding, Location as ProtoLocation, Scope } from '@backplane/proto/naming';
import { EXTERNAL_ADDRESS_KEY, parseHostPort } from '@backplane/runtime';
import type { LocationInput } from './limits';
import type { BindingView, ScopeRecord } from './records';

/**
 * A binding as an external caller (outside the services' network) sees it: at the external address its
 * server published (location metadata `external`), when it published one.
 */
export function externalView(b: BindingView): BindingView {
  const external = b.location.metadata[EXTERNAL_ADDRESS_KEY];
  if (!external) return b;
  try {
    const { host, port } = parseHostPort(external);
    return { ...b, location: { ...b.location, host, port } };
  } catch {
    return b;
  }
}

export function bindingToProto(b: BindingView): Binding {
  return {
    scope: b.scope,
    name: b.name,
    addressId: b.addressId,
    types: b.types,
    location: { host: b.location.host, port: b.location.port, metadata: b.location.metadata },
    leaseExpiresAt: b.leaseExpiresAt === undefined ? undefined : new Date(b.leaseExpiresAt),
    revision: b.revision,
  };
}

export function bindingFromProto(b: Binding): BindingView {
  return {
    scope: b.scope,
    name: b.name,
    addressId: b.addressId,
    types: b.types,
    location: locationFromProto(b.location) ?? { host: '', port: 0, metadata: {} },
    leaseExpiresAt: b.leaseExpiresAt?.getTime(),
    revision: b.revision,
  };
}

export function locationFromProto(l: ProtoLocation | undefined): LocationInput | undefined {
  return l ? { host: l.host, port: l.port, metadata: l.metadata } : undefined;
}

export function scopeToProto(s: ScopeRecord): Scope {
  return { name: s.name, parent: s.parent ?? '', createdAt: new Date(s.createdAt) };
}
