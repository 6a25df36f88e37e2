/**
 * Around the whole suite: the temporary directory's mode must be what it was (a test once made /tmp 0755, which
 * breaks every other user of the machine). A change is put back and fails the run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export default function setup(): () => void {
  const tmp = os.tmpdir();
  const mode = fs.statSync(tmp).mode & 0o7777;
  return () => {
    const now = fs.statSync(tmp).mode & 0o7777;
    if (now !== mode) {
      fs.chmodSync(tmp, mode);
      throw new Error(`a test changed the mode of ${tmp} from ${mode.toString(8)} to ${now.toString(8)} (put back)`);
    }
  };
}
