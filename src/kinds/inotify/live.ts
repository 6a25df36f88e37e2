/**
 * inotify instances (tail -f, file watchers): checkpoint and restart side by side.
 *
 * Checkpoint: fdinfo lists each watch: its wd, mask and the watched inode as a
 * file handle. crimg opens the handle (open_by_handle_at on a mount of that
 * device, O_PATH) and reads the file's path. Events already queued are in no
 * /proc file: an instance with events waiting (FIONREAD on a copy of its fd,
 * pidfd_getfd) is a reason (INOTIFY), as is a watch whose file has no path.
 *
 * Restart: inotify_init1, then the watches by ascending wd (IN_DONT_FOLLOW: the
 * path is the watched inode's own). The kernel hands out wds from 1 up and never
 * reuses one: a gap left by a removed watch is made again with a watch on a
 * spare directory removed at once. Each wd is checked.
 */
import * as fs from 'node:fs';
import type { InotifyWatch, OpenFile } from '../../model.js';
import type { FdInfo } from '../../os/proc.js';
import { addressOf, fionread, syscall } from '../../os/libc.js';
import { O_CLOEXEC, O_NONBLOCK, O_PATH } from '../../os/consts.js';
import { SYS } from '../../os/syscalls.js';
import { type TaskCall, fetchFd } from '../../os/taskcall.js';
import type { LiveFdKind } from '../live.js';
import { inotify as kindFormat } from './format.js';

const IN_DONT_FOLLOW = 0x02000000,
  IN_CREATE = 0x100;

/** Whether fd link is an inotify instance. */
function isInotify(link: string): boolean {
  return link === 'anon_inode:inotify' || link === 'anon_inode:[inotify]';
}

/** A mount point of each device (major:minor), from /proc/self/mountinfo: one of the whole file system if any. */
function mountsByDev(): Map<string, string> {
  const out = new Map<string, { at: string; whole: boolean }>();
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const dev = f[2]!,
      whole = f[3] === '/',
      at = f[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const cur = out.get(dev);
    if (!cur || (!cur.whole && whole)) out.set(dev, { at, whole });
  }
  return new Map([...out].map(([k, v]) => [k, v.at]));
}

/** The path of the file a handle names on device `dev` (major:minor), or null. */
function handlePath(dev: string, type: number, handle: Uint8Array, mounts: Map<string, string>): string | null {
  const at = mounts.get(dev);
  if (!at) return null;
  let mfd = -1,
    fd = -1;
  try {
    mfd = fs.openSync(at, fs.constants.O_RDONLY); // an O_PATH descriptor gets EBADF here
    const fh = new Uint8Array(8 + handle.length);
    const dv = new DataView(fh.buffer);
    dv.setUint32(0, handle.length, true);
    dv.setInt32(4, type, true);
    fh.set(handle, 8);
    fd = syscall(SYS.open_by_handle_at, mfd, addressOf(fh), O_PATH | O_CLOEXEC);
    const p = fs.readlinkSync(`/proc/self/fd/${fd}`);
    return p.startsWith('/') && !p.endsWith(' (deleted)') ? p : null;
  } catch {
    return null;
  } finally {
    for (const x of [fd, mfd])
      if (x >= 0)
        try {
          fs.closeSync(x);
        } catch {
          /* ignore */
        }
  }
}

// ------------------------------------------------------------------ checkpoint

/** The watches of inotify fd `f` of process pid, or why they cannot be saved (`mounts`: mountsByDev()). */
function inotifyState(pid: number, f: FdInfo, mounts: () => Map<string, string>): { watches: InotifyWatch[] } | { problem: string } {
  let queued = 0;
  try {
    const fd = fetchFd(pid, f.fd);
    try {
      queued = fionread(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    return { problem: `its queue cannot be looked at (${(e as Error).message})` };
  }
  if (queued > 0) return { problem: `${queued} bytes of events are queued, which no /proc file shows` };
  const watches: InotifyWatch[] = [];
  for (const line of f.inotify) {
    const m =
      /wd:(\d+) ino:[0-9a-f]+ sdev:([0-9a-f]+) mask:([0-9a-f]+) .*fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]+)/.exec(
        line,
      );
    if (!m) return { problem: `a watch cannot be read (${line})` };
    const sdev = parseInt(m[2]!, 16);
    const dev = `${sdev >>> 20}:${sdev & 0xfffff}`;
    const handle = Uint8Array.from(m[6]!.match(/../g)!.map((x) => parseInt(x, 16)));
    const p = handlePath(dev, parseInt(m[5]!, 16), handle.subarray(0, parseInt(m[4]!, 16)), mounts());
    if (!p) return { problem: `watch ${m[1]} is on a file crimg cannot find a path to (device ${dev})` };
    watches.push({ wd: Number(m[1]), mask: parseInt(m[3]!, 16), path: p });
  }
  return { watches: watches.sort((a, b) => a.wd - b.wd) };
}

/** Saved with its watches, unless events are queued or a watched file has no path (an INOTIFY reason). */
export const inotifyLive: LiveFdKind<InotifyWatch[]> = {
  scope: 'fd',
  format: kindFormat,
  name: 'inotify',
  inspect(f, ctx) {
    if (!isInotify(f.link)) return null;
    const st = inotifyState(ctx.pid, f, () => ctx.once('mounts by device', mountsByDev));
    if ('problem' in st) return { reason: { code: 'INOTIFY', text: `fd ${f.fd} is an inotify instance: ${st.problem}` } };
    return { state: st.watches };
  },
  restore: [
    {
      when: 'fd',
      has: (f) => f.inotify !== undefined,
      run(rc, f) {
        const at = `fd ${f.fd} inotify`;
        rc.placeFd(
          f,
          at,
          rc.step('create file', at, () => createInotify(f, rc.call, rc.str)),
        );
      },
    },
  ],
};

// ------------------------------------------------------------------ restart

/**
 * Make inotify instance `f` in the task, with its watches at their wds; returns the fd the kernel gave it.
 * `str` writes a string into the task and returns its address.
 */
export function createInotify(f: OpenFile, call: TaskCall, str: (s: string) => bigint): number {
  const fd = Number(call(SYS.inotify_init1, [(f.flags & O_NONBLOCK) | (f.cloexec ? O_CLOEXEC : 0)], 'inotify_init1'));
  const watched = new Set(f.inotify!.map((w) => w.path));
  const spare = ['/', '/proc', '/dev', '/sys', '/tmp'].find((p) => !watched.has(p)) ?? '/';
  let next = 1;
  for (const w of f.inotify!) {
    while (next < w.wd) {
      // a wd the program removed: taken and given back
      const got = Number(call(SYS.inotify_add_watch, [fd, str(spare), IN_CREATE], `inotify_add_watch ${spare}`));
      call(SYS.inotify_rm_watch, [fd, got]);
      next = got + 1;
    }
    const got = Number(call(SYS.inotify_add_watch, [fd, str(w.path), w.mask | IN_DONT_FOLLOW], `inotify_add_watch ${w.path}`));
    if (got !== w.wd) throw new Error(`inotify watch on ${w.path} got wd ${got}, not ${w.wd}`);
    next = got + 1;
  }
  return fd;
}
