import { benchDs } from './ds';
import { benchIbp } from './ibp';
import { benchNaming } from './naming';
import { benchReplicated } from './replicated';
import { benchSharing } from './sharing';
import { benchTupleSpace } from './tuplespace';

/** `pnpm bench [name…]`: runs the named benchmarks (default: all). */
const benches: Record<string, () => Promise<void>> = {
  naming: benchNaming,
  ibp: benchIbp,
  tuplespace: benchTupleSpace,
  sharing: benchSharing,
  replicated: benchReplicated,
  ds: benchDs,
};

async function main() {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  for (const [name, run] of Object.entries(benches)) {
    if (wanted.length === 0 || wanted.includes(name)) await run();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
