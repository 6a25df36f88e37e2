/**
 * File locks (flock, POSIX and OFD locks on regular files and directories), as the `lock:` lines of
 * /proc/PID/fdinfo/FD show them. /proc shows a flock or OFD lock on every fd of its open file description and a
 * POSIX lock on every fd of its file: each is saved once, on the lowest fd that shows it, and taken once at
 * restore (restoreFlocks below). Leases, delegations and lines crimg cannot read are a reason (FILE_LOCK).
 */
import { type FileLock, LOCK_EOF, LOCK_KIND, type OpenFile } from '../../model.js';
import { type FdInfo, devMajor, devMinor, fileType, isMemfdPath } from '../../os/proc.js';
import { F_OFD_SETLK, F_RDLCK, F_SETLK, F_WRLCK, LOCK_EX, LOCK_NB, LOCK_SH, S_IFDIR, S_IFREG } from '../../os/consts.js';
import { SYS } from '../../os/syscalls.js';
import type { FdInspectCtx, LiveFdKind, RestoreCalls } from '../live.js';
import { flocks as kindFormat } from './format.js';

/** A lock line of /proc/PID/fdinfo/FD ("1: POSIX  ADVISORY  WRITE 123 fe:00:456 0 EOF"), parsed; null for kinds
 *  crimg does not restore (leases, delegations) or a line it cannot read. */
interface ProcLock {
  kind: 'FLOCK' | 'POSIX' | 'OFDLCK';
  write: boolean;
  start: bigint;
  end: bigint | null;
}
function parseLockLine(v: string): ProcLock | null {
  const m = /^\d+:\s+(FLOCK|POSIX|OFDLCK)\s+ADVISORY\s+(READ|WRITE)\s+-?\d+\s+[0-9a-f]+:[0-9a-f]+:\d+\s+(\d+)\s+(EOF|\d+)$/.exec(v.trim());
  if (!m) return null;
  return { kind: m[1] as ProcLock['kind'], write: m[2] === 'WRITE', start: BigInt(m[3]!), end: m[4] === 'EOF' ? null : BigInt(m[4]!) };
}

const KINDS = { FLOCK: LOCK_KIND.FLOCK, POSIX: LOCK_KIND.POSIX, OFDLCK: LOCK_KIND.OFD };

/** Whether fd `f` is a regular file or a directory (the files whose locks crimg saves). */
function lockable(f: FdInfo): boolean {
  const t = f.stat ? fileType(f.stat.mode) : 0;
  return t === S_IFREG || t === S_IFDIR;
}

/** The locks each fd of the task saves: those it shows that no lower fd showed. */
function locksByFd(ctx: FdInspectCtx): Map<number, FileLock[]> {
  const seen = new Set<string>();
  const out = new Map<number, FileLock[]>();
  for (const f of [...ctx.fds].sort((a, b) => a.fd - b.fd)) {
    if (!lockable(f)) continue;
    const file = `${devMajor(f.stat!.dev)}:${devMinor(f.stat!.dev)}:${f.stat!.ino}`;
    const locks: FileLock[] = [];
    for (const line of f.locks) {
      const l = parseLockLine(line);
      if (!l) continue; // a reason (inspect)
      const lock = { kind: KINDS[l.kind], write: l.write, start: l.start, end: l.end ?? LOCK_EOF };
      const key = `${file}:${lock.kind}:${lock.write}:${lock.start}:${lock.end}`;
      if (seen.has(key)) continue;
      seen.add(key);
      locks.push(lock);
    }
    if (locks.length) out.set(f.fd, locks);
  }
  return out;
}

/** The locks of a regular file or directory, and a FILE_LOCK reason for those crimg cannot take again (a memfd's
 *  are left to its own reason, MEMFD). */
export const flocksLive: LiveFdKind<FileLock[], Map<number, FileLock[]>> = {
  scope: 'fd',
  format: kindFormat,
  name: 'flocks',
  attribute: true,
  task: locksByFd,
  inspect(f, _ctx, byFd) {
    if (!lockable(f)) return null;
    const locks = byFd.get(f.fd);
    const odd = isMemfdPath(f.link) ? [] : f.locks.filter((l) => !parseLockLine(l));
    if (odd.length) {
      const what = odd.length === 1 ? 'a lease or lock' : `${odd.length} leases or locks`;
      const reason = { code: 'FILE_LOCK' as const, text: `fd ${f.fd} (${f.link}) holds ${what} crimg cannot restore (${odd[0]!.trim()})` };
      return locks ? { reason, state: locks } : { reason };
    }
    return locks ? { state: locks } : null;
  },
  restore: [{ when: 'last', has: (f) => f.locks !== undefined, run: (rc, f) => restoreFlocks(rc, f, f.locks!) }],
};

/**
 * The locks taken through one fd, at the end: flock, or fcntl F_SETLK / F_OFD_SETLK on the bytes recorded, none of
 * them waiting. A lock someone else holds now fails the restore (EAGAIN) rather than leave the task believing it
 * has it.
 */
export function restoreFlocks(rc: RestoreCalls, f: OpenFile, locks: FileLock[]): void {
  const fl = new Uint8Array(32);
  const dv = new DataView(fl.buffer);
  for (const l of locks) {
    const at = `fd ${f.fd} ${f.path} ${l.write ? 'write' : 'read'} lock ${l.start}..${l.end === LOCK_EOF ? 'EOF' : l.end}`;
    if (l.kind === LOCK_KIND.FLOCK) {
      rc.step('file lock', at, () => rc.call(SYS.flock, [f.fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB], 'flock'));
      continue;
    }
    fl.fill(0);
    dv.setInt16(0, l.write ? F_WRLCK : F_RDLCK, true);
    dv.setInt16(2, 0, true); // SEEK_SET
    dv.setBigInt64(8, l.start, true);
    dv.setBigInt64(16, l.end === LOCK_EOF ? 0n : l.end - l.start + 1n, true); // 0: to the end of the file
    rc.step('file lock', at, () => {
      const data = rc.scratch(fl);
      rc.call(
        SYS.fcntl,
        [f.fd, l.kind === LOCK_KIND.OFD ? F_OFD_SETLK : F_SETLK, data],
        l.kind === LOCK_KIND.OFD ? 'F_OFD_SETLK' : 'F_SETLK',
      );
    });
  }
}
