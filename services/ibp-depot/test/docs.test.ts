import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { depotSettings } from '../src';

describe('README configuration table', () => {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');

  it.each(Object.values(depotSettings).map((s) => [s.env, s] as const))(
    'documents %s with its flag',
    (env, s) => {
      expect(readme).toMatch(new RegExp(`\\|\\s*\`${env}\`\\s*\\|\\s*\`--${s.flag}\`\\s*\\|`));
    },
  );
});
