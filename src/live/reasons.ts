/**
 * The reasons that belong to no kind of saved state: a task traced or under seccomp, a zombie, children outside
 * the dump, a namespace shared with outsiders, mappings crimg does not save, and the fds no kind claims (devices,
 * terminals, sockets and named pipes, other anonymous-inode files, deleted or unreachable files). The kinds' own
 * reasons come from their live facets (src/kinds/live.ts); inspect.ts runs both.
 */
import * as fs from 'node:fs';
import type { NocrCode } from '../kinds/live.js';
import {
  type FdInfo,
  type MapEntry,
  allPids,
  devMajor,
  devMinor,
  fileType,
  isDeletedPath,
  isMemfdPath,
  isSharedAnonPath,
  isSysvShmPath,
  listChildren,
  procPath,
  processesText,
  readStat,
  readStatus,
  stripDeleted,
  tracerPid,
  tryReadlink,
} from '../os/proc.js';
import { PF_KTHREAD, S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '../os/consts.js';
import type { Reason } from '../kinds/live.js';
import type { Holders } from './inspect.js';

type Add = (code: NocrCode, text: string) => void;

const SAFE_CHAR_DEVICES = new Set(['1:3', '1:5', '1:7', '1:8', '1:9']); // null zero full random urandom
const isTtyMajor = (maj: number): boolean => maj === 4 || maj === 5 || (maj >= 136 && maj <= 143);

/**
 * The reasons of the process itself: a kernel thread is no task (false: nothing more to examine), nor is a zombie
 * (ZOMBIE, false); traced by another process (TRACED: crimg's own tracing, `selfTraced`, is not), seccomp.
 */
export function processReasons(pid: number, opts: { selfTraced?: boolean }, add: Add): boolean {
  const st = readStat(pid);
  if (st.flags & PF_KTHREAD) return false;
  if (st.state === 'Z') {
    add('ZOMBIE', `process ${pid} (${st.comm}) is a zombie`);
    return false;
  }
  const status = readStatus(pid);
  const tp = tracerPid(status);
  if (tp !== 0 && !(opts.selfTraced && tp === process.pid)) {
    let comm = '?';
    try {
      comm = readStat(tp).comm;
    } catch {
      /* gone */
    }
    add('TRACED', `process ${pid} is traced by process ${tp} (${comm})`);
  }
  const seccomp = parseInt(status.get('Seccomp') ?? '0', 10) || 0;
  if (seccomp === 1) add('SECCOMP', `process ${pid} runs in seccomp strict mode`);
  if (seccomp === 2) {
    const n = status.get('Seccomp_filters');
    add('SECCOMP', `process ${pid} has ${n ? `${n} ` : ''}seccomp filter${n === '1' ? '' : 's'} installed, which crimg does not save`);
  }
  return true;
}

/** The code of an anonymous-inode file no kind saves (or of a pidfd), or null for other files. */
function anonInodeCode(link: string): NocrCode | null {
  const l = link.toLowerCase();
  if (l.startsWith('pidfd:')) return 'PIDFD';
  if (!l.startsWith('anon_inode:')) return null;
  if (l.includes('eventfd')) return 'EVENTFD';
  if (l.includes('signalfd')) return 'SIGNALFD';
  if (l.includes('timerfd')) return 'TIMERFD';
  if (l.includes('inotify')) return 'INOTIFY';
  if (l.includes('fanotify')) return 'FANOTIFY';
  if (l.includes('eventpoll')) return 'EPOLL';
  if (l.includes('io_uring')) return 'IO_URING';
  if (l.includes('userfaultfd')) return 'USERFAULTFD';
  if (l.includes('pidfd')) return 'PIDFD';
  if (l.includes('perf_event')) return 'PERF_EVENT';
  if (l.includes('bpf')) return 'BPF';
  if (l.includes('aio')) return 'AIO';
  return 'ANON_INODE';
}

/** A regular file or directory: deleted, or its path no longer leads to it. */
function fileReasons(f: FdInfo, stat: fs.BigIntStats, add: (r: Reason) => void): void {
  const what = `fd ${f.fd}`;
  const link = f.link;
  if (isDeletedPath(link) || stat.nlink === 0n) {
    add({ code: 'FILE_DELETED', text: `${what} is the deleted file ${stripDeleted(link)}; it cannot be reopened` });
  } else if (link.startsWith('/')) {
    let same = false;
    try {
      const s = fs.statSync(link, { bigint: true });
      same = s.dev === stat.dev && s.ino === stat.ino;
    } catch {
      /* unreachable */
    }
    if (!same)
      add({ code: 'FILE_UNREACHABLE', text: `${what} is ${link}, but that path does not lead to the same file from crimg's view` });
  } else {
    add({ code: 'FILE_UNREACHABLE', text: `${what} is ${link}, which has no path crimg can reopen` });
  }
}

/** The reasons of an fd no kind claimed. */
export function fdReasons(f: FdInfo, holders: Holders, add: (r: Reason) => void): void {
  const what = `fd ${f.fd}`;
  const link = f.link;
  const anon = anonInodeCode(link);
  if (anon) {
    add({
      code: anon,
      text: `${what} is ${anon === 'ANON_INODE' ? `an anonymous-inode file (${link})` : `${link}`}, which crimg cannot save or rebuild`,
    });
    return;
  }
  if (isMemfdPath(link)) {
    add({ code: 'MEMFD', text: `${what} is a memfd (${link}); its contents are not saved` });
    return;
  }
  if (!f.stat) return;
  const t = fileType(f.stat.mode);
  if (t === S_IFSOCK) {
    const ext = holders.outside(link);
    add({
      code: 'SOCKET',
      text: `${what} is a socket (${link})${ext.length ? ` also held by ${processesText(ext)} outside the tree` : ''}; its connection state and queued data are not saved`,
    });
    return;
  }
  if (t === S_IFIFO) {
    // a pipe is the pipe kind's
    if (!link.startsWith('pipe:'))
      add({ code: 'FIFO', text: `${what} is the named pipe ${link}; its data and the other end are not saved` });
    return;
  }
  if (t === S_IFCHR || t === S_IFBLK) {
    const maj = devMajor(f.stat.rdev);
    const min = devMinor(f.stat.rdev);
    if (t === S_IFCHR && SAFE_CHAR_DEVICES.has(`${maj}:${min}`)) return;
    if (t === S_IFCHR && isTtyMajor(maj)) {
      add({ code: 'TTY', text: `${what} is the terminal ${link}; terminal state is not saved` });
      return;
    }
    add({
      code: 'DEVICE',
      text: `${what} is the ${t === S_IFCHR ? 'character' : 'block'} device ${link} (${maj}:${min}); device state is not saved`,
    });
    return;
  }
  fileReasons(f, f.stat, add);
}

/** Mappings crimg does not save, or shares with processes outside the tree (each reason once per mapping). */
export function mapReasons(maps: MapEntry[], holders: Holders, add: Add): void {
  const seen = new Set<string>();
  const once = (code: NocrCode, key: string, text: string): void => {
    if (seen.has(`${code}:${key}`)) return;
    seen.add(`${code}:${key}`);
    add(code, text);
  };
  for (const m of maps) {
    const range = `0x${m.start.toString(16)}-0x${m.end.toString(16)}`;
    const p = m.path;
    if (m.vmflags.has('ht'))
      once('HUGETLB', range, `mapping ${range} (${p || 'anonymous'}) is hugetlb memory, which crimg does not support`);
    if ((m.vmflags.has('io') || m.vmflags.has('pf')) && !/^\[(vvar|vvar_vclock|vsyscall|vdso)\]$/.test(p))
      once('DEVICE_MEMORY', range, `mapping ${range} (${p}) maps device memory`);
    if (p === '[aio]' || p.startsWith('/[aio]')) once('AIO', 'aio', `mapping ${range} is an AIO ring; in-flight requests are not saved`);
    if (isSysvShmPath(p)) {
      once('SYSV_SHM', p, `mapping ${range} is the System V shared memory segment ${p.split(' ')[0]} (key 0x${p.slice(5, 13)})`);
      continue;
    }
    if (isMemfdPath(p)) {
      once('MEMFD', p, `mapping ${range} maps the memfd ${stripDeleted(p)}; its contents outside the mapped pages are not saved`);
      continue;
    }
    if (m.shared && isSharedAnonPath(p)) {
      const ext = holders.shmemOutside(`${m.devMajor}:${m.devMinor}:${m.inode}`);
      if (ext.length)
        once('SHARED_ANON', range, `shared anonymous mapping ${range} is also mapped by ${processesText(ext)} outside the tree`);
      continue;
    }
    if (m.shared && p.startsWith('/dev/shm/')) {
      once('POSIX_SHM', p, `mapping ${range} maps the POSIX shared memory object ${stripDeleted(p)} shared`);
      continue;
    }
    if (p.startsWith('/') && isDeletedPath(p)) once('FILE_DELETED', p, `mapping ${range} maps the deleted file ${stripDeleted(p)}`);
  }
}

/** Children outside the dump: CHILDREN, or with the whole tree dumped (`tree`) children that are zombies. */
export function childReasons(pid: number, tree: Set<number>, wholeTree: boolean, add: Add): void {
  const kids = listChildren(pid).filter((c) => !tree.has(c));
  if (!kids.length) return;
  const zombies = kids.filter((c) => {
    try {
      return readStat(c).state === 'Z';
    } catch {
      return false;
    }
  });
  add(
    wholeTree ? 'ZOMBIE' : 'CHILDREN',
    wholeTree
      ? `process ${pid} has ${zombies.length === 1 ? 'a zombie child' : 'zombie children'} (${kids.join(', ')}) not yet reaped`
      : `process ${pid} has ${kids.length === 1 ? 'a child' : 'children'} (${kids.join(', ')}) that would not be restored (use --tree)`,
  );
}

const NS_KINDS = ['ipc', 'mnt', 'pid', 'net', 'user', 'cgroup', 'time', 'uts'];

/** The namespaces of a container (those of pid that are not crimg's) shared with processes outside the tree. */
export function nsReasons(pid: number, tree: Set<number>, add: Add): void {
  for (const k of NS_KINDS) {
    const mine = tryReadlink(`/proc/self/ns/${k}`);
    const theirs = tryReadlink(procPath(pid, `ns/${k}`));
    if (!theirs || theirs === mine) continue;
    const ext: number[] = [];
    for (const p of allPids()) {
      if (tree.has(p) || ext.length >= 5) continue;
      if (tryReadlink(procPath(p, `ns/${k}`)) === theirs) ext.push(p);
    }
    if (ext.length)
      add('NS_SHARED', `the ${k} namespace ${theirs} of process ${pid} is shared with ${processesText(ext)} outside the tree`);
  }
}
