// Locations of the real annotation files that the converter tests read. This file is
// outside test/ because node --test runs every .js file under test/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Folder shared/data beside the repository, with real annotation files. */
export const SHARED_DATA = fileURLToPath(new URL('../shared/data/', `file://${repoRoot}`));

/** Examples of Debian's labelme-examples package. */
export const LABELME_EXAMPLES = '/usr/share/doc/labelme-examples/examples/';

/** Returns the test option `skip` for a file: false when it exists, else the reason. */
export function skipUnless(file) {
  return existsSync(file) ? false : `${file} is absent; install labelme-examples or provide the shared data folder`;
}
