// Regenerates src/gen (ts-proto) and descriptors.binpb (for server reflection) from ../../proto.
// Both are committed: CI regenerates and fails on a diff (`pnpm check:generated`).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(pkg, '..', '..', 'proto');
const buf = join(pkg, 'node_modules', '.bin', 'buf');
const run = (args) => execFileSync(buf, args, { cwd: pkg, stdio: 'inherit' });

run(['lint', protoDir]);
rmSync(join(pkg, 'src', 'gen'), { recursive: true, force: true });
run(['generate', protoDir, '--template', 'buf.gen.yaml']);
run(['build', protoDir, '-o', 'descriptors.binpb']);
