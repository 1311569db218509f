import type { Metadata } from '@grpc/grpc-js';

/** Metadata as the pipeline's string maps carry it: binary (`-bin`) values in base64. */
export function metadataEntries(md: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md?.getMap() ?? {}))
    out[k] = typeof v === 'string' ? v : v.toString('base64');
  return out;
}

/** Adds a pipeline string map's entries to `md` (throws on a key or value Metadata refuses). */
export function addEntries(md: Metadata, entries: Record<string, string>): Metadata {
  for (const [k, v] of Object.entries(entries)) {
    if (k.endsWith('-bin')) md.set(k, Buffer.from(v, 'base64'));
    else md.set(k, v);
  }
  return md;
}
