/** Small tmpfs mounts for disk-full and read-only tests (root only). */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';

export function mount(dir: string, opts: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
}

export function umount(dir: string): void {
  try {
    execFileSync('umount', [dir]);
  } catch {
    execFileSync('umount', ['-l', dir]);
  }
}

/** Unmount whatever is still mounted below `root` (a test stopped by a timeout never reached its finally). */
export function umountAllUnder(root: string): void {
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const m = line.split(' ')[1];
    if (m?.startsWith(`${root}/`)) {
      try {
        execFileSync('umount', ['-l', m]);
      } catch {
        /* not mounted */
      }
    }
  }
}
