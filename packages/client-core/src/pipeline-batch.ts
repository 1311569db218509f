// How answers of a pipelined turn are packed into messages: the same on both ends of the pipeline stream.

/** Answers of one turn go in one message up to about this many bytes; more start another message. */
export const MAX_BATCH_BYTES = 256 * 1024;

/** One message carrying `parts`: the first, with the others in its `more`. */
export function withMore<M extends { more: M[] }>(parts: M[]): M {
  const [first, ...more] = parts as [M, ...M[]];
  return more.length > 0 ? { ...first, more } : first;
}
