/**
 * FLOCKS <-> filelocks.img: one file_lock_entry per lock of the dump, with the pid of its task and the fd it is
 * held through (CRIU restores each in that task, on that fd): flag FL_FLOCK, FL_POSIX or FL_OFD, type F_RDLCK 0 or
 * F_WRLCK 1, start and len (0: to the end of the file; a flock: 0, 0). On import, an entry crimg cannot take (a
 * lease, a negative range, an fd it does not import) becomes a FILE_LOCK reason.
 */
import type { CriuDumpImage, CriuKindMap } from '../../criu/kind-map.js';
import { CRIU_FL } from '../../criu/proto.js';
import { num } from '../../criu/fields.js';
import { type FileLock, type OpenFile, LOCK_EOF, LOCK_KIND } from '../../model.js';

const FILELOCKS: CriuDumpImage = { file: 'filelocks.img', magic: 'FILE_LOCKS', entry: 'file_lock_entry' };
/** file_lock_entry.flag of each LOCK_KIND, and back. */
const FLAG_OF: Record<number, number> = {
  [LOCK_KIND.FLOCK]: CRIU_FL.FLOCK,
  [LOCK_KIND.POSIX]: CRIU_FL.POSIX,
  [LOCK_KIND.OFD]: CRIU_FL.OFD,
};
const KIND_OF: Record<number, number> = Object.fromEntries(Object.entries(FLAG_OF).map(([kind, flag]) => [flag, Number(kind)]));

export const criuMap: CriuKindMap<FileLock[], 'fd'> = {
  record: 'FLOCKS',
  owner: 'fd',
  images: [FILELOCKS],
  get: (f) => f.locks,
  set: (f, v) => {
    f.locks = v;
  },
  toCriu(locks, { pid, file, dump }) {
    for (const l of locks) {
      dump.add(FILELOCKS, {
        flag: FLAG_OF[l.kind]!,
        type: l.write ? 1 : 0,
        pid,
        fd: file.fd,
        start: l.kind === LOCK_KIND.FLOCK ? 0n : l.start,
        len: l.kind === LOCK_KIND.FLOCK || l.end === LOCK_EOF ? 0n : l.end - l.start + 1n,
      });
    }
  },
  fromCriu({ pid, files, dump, nocr }) {
    const out = new Map<OpenFile, FileLock[]>();
    for (const { msg: e } of dump.entries(FILELOCKS)) {
      if (num(e.pid) !== pid) continue;
      const fdn = num(e.fd),
        flag = num(e.flag),
        kind = KIND_OF[flag];
      const f = files.find((x) => x.fd === fdn);
      const start = BigInt(e.start as bigint),
        len = BigInt(e.len as bigint);
      if (!kind || !f || start < 0n || len < 0n) {
        const text = `filelocks.img: a lock (flag ${flag}) on fd ${fdn}${f ? '' : ', which crimg does not import'} is not imported`;
        nocr.push({ code: 'FILE_LOCK', pid, text });
        continue;
      }
      const locks = out.get(f) ?? [];
      locks.push({
        kind,
        write: num(e.type) === 1,
        start: kind === LOCK_KIND.FLOCK ? 0n : start,
        end: kind === LOCK_KIND.FLOCK || len === 0n ? LOCK_EOF : start + len - 1n,
      });
      out.set(f, locks);
    }
    return out;
  },
};
