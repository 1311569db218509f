/**
 * Whether a nats-server replicates a stream's writes safely enough to run R3 on it: before 2.9.21,
 * conditional writes on replicated streams could both succeed (nats-io/nats-server#4320). The replicated
 * log does not use them, but deduplication and leader changes got fixes in the same releases; Debian
 * bookworm's 2.9.10 is refused for R3, trixie's 2.10 is fine.
 */
export function safeConditionalWrites(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map(Number);
  return major > 2 || (major === 2 && (minor > 9 || (minor === 9 && patch >= 21)));
}
