import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nameServerSettings } from '../src/config';

describe('README configuration table', () => {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');

  it.each(Object.values(nameServerSettings).map((s) => [s.env, s] as const))(
    'documents %s with its flag',
    (env, s) => {
      expect(readme).toMatch(new RegExp(`\\|\\s*\`${env}\`\\s*\\|\\s*\`--${s.flag}\`\\s*\\|`));
    },
  );
});
