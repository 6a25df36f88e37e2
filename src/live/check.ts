/**
 * "Is it safe to checkpoint?": every reason a process (tree) cannot be
 * checkpointed and restarted faithfully, each with a stable code, the task and
 * a plain sentence. Used by `crimg check` (without freezing) and by dump (on
 * the frozen tree; the reasons go into the image as NOCR records).
 */
import * as fs from 'node:fs';
import { type NocrReason, POSIX_TIMER_CLOCKS, SIGEV } from '../model.js';
import { anonState } from './anonfd.js';
import { inotifyState, isInotify } from './inotify.js';
import { listenState, sameNetNs, tcpListeners } from './listen.js';
import { type UnixSock, ownPairs, pairSavable, socketIno, unixSockets } from './unixpair.js';
import {
  type FdInfo, type MapEntry, allPids, devMajor, devMinor, fileType,
  isDeletedPath, isMemfdPath, isSharedAnonPath, isSysvShmPath, listChildren, procPath, readFds, readMaps, readStat,
  parseLockLine, readPosixTimers, readStatus, stripDeleted, tracerPid, tryReadlink, type ProcTimer,
} from '../os/proc.js';
import { PF_KTHREAD, S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '../os/consts.js';

/** The reason codes `check` can report, with what they mean. */
export const NOCR_CODES = {
  STDIO: 'fd 0, 1 or 2 is a terminal, or a pipe or socket another process holds (a shell, a supervisor, a log collector): no reason not to checkpoint, but `crimg restore` needs --inherit-stdio to give the task its own',
  TRACED: 'the task is traced by another process (debugger, strace)',
  SECCOMP: 'the task runs under seccomp (strict mode or filters), which crimg does not save',
  SOCKET: 'an open socket (other than a UNIX socket pair the task holds both of): connection state and queued data are not saved',
  PIPE: 'a pipe also held by a process outside the tree (a task\'s own pipes and those between tasks of the tree are saved with their bytes)',
  FIFO: 'an open named pipe (FIFO): its buffered data and the other end are not saved',
  EVENTFD: 'an eventfd whose counter fdinfo does not show',
  SIGNALFD: 'a signalfd whose mask fdinfo does not show',
  TIMERFD: 'a timerfd crimg cannot set up again (TFD_TIMER_CANCEL_ON_SET)',
  POSIX_TIMER: 'a POSIX timer (timer_create) on a clock crimg cannot restore it on (a thread\'s CPU time, another process\'s clock), or notifying in a way it does not know',
  INOTIFY: 'an inotify instance with events queued (no /proc file shows them), or watching a file crimg finds no path to',
  FANOTIFY: 'a fanotify instance: its marks and queued events are not saved',
  EPOLL: 'an epoll instance watching a file no longer at the fd it was added with, or another epoll',
  IO_URING: 'an io_uring instance: rings and in-flight requests are not saved',
  USERFAULTFD: 'a userfaultfd: registered ranges and pending faults are not saved',
  PIDFD: 'a pidfd: refers to a process that will not exist after a restart',
  PERF_EVENT: 'a perf event fd: not saved',
  BPF: 'a BPF map or program fd: not saved',
  ANON_INODE: 'another anonymous-inode file (kernel object without a path): not saved',
  DEVICE: 'an open device file (other than /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom): device state is not saved',
  TTY: 'an open terminal: terminal state and the session\'s controlling terminal are not saved',
  FILE_DELETED: 'an open or mapped file that was deleted: it cannot be reopened by path',
  FILE_UNREACHABLE: 'an open file whose path no longer leads to the same file (renamed, replaced or in another mount namespace)',
  FILE_LOCK: 'a file lease or delegation, or a lock on a file crimg does not reopen: not saved (flock, POSIX and OFD locks on regular files and directories are)',
  MEMFD: 'a memfd (file or shared mapping): its contents are not saved',
  SYSV_SHM: 'a System V shared memory segment: the segment is not saved',
  POSIX_SHM: 'a POSIX shared memory object (/dev/shm) mapped shared: other users of it are not checkpointed',
  SHARED_ANON: 'shared anonymous memory also mapped by a task outside the tree',
  HUGETLB: 'hugetlb memory: not supported',
  DEVICE_MEMORY: 'a mapping of device memory (VM_IO/VM_PFNMAP): not saved',
  AIO: 'an AIO context: in-flight requests are not saved',
  NS_SHARED: 'a namespace (of a container dump) is shared with tasks outside the tree',
  CHILDREN: 'the process has children that are not part of the dump (use --tree)',
  ZOMBIE: 'a task of the tree is a zombie',
  VANISHED: 'a task of the tree exited while it was being examined',
} as const;
export type NocrCode = keyof typeof NOCR_CODES;

/** Codes that do not make a checkpoint unsafe: recorded in the image, reported by check, refused by restore only
 *  without the option that handles them (STDIO: --inherit-stdio). */
export const NOTE_CODES: ReadonlySet<string> = new Set(['STDIO']);

/** The reasons that make a checkpoint unsafe (all but NOTE_CODES). */
export function blocking<T extends { code: string }>(reasons: T[]): T[] { return reasons.filter((r) => !NOTE_CODES.has(r.code)); }

export interface CheckOptions {
  /** Dump the whole tree (children are part of it). */
  tree?: boolean;
  /** crimg itself traces the tree (dump): a TracerPid equal to ours is not a reason. */
  selfTraced?: boolean;
  /** fd tables already read (by dump, while frozen), by pid. */
  fds?: Map<number, FdInfo[]>;
  /** /proc/PID/smaps already read (by pid), to avoid reading it again. */
  maps?: Map<number, MapEntry[]>;
  /** Do not look at processes outside the tree (a warm-up run whose answer is not used). */
  quick?: boolean;
  /** Filled with the links (pipe:[N], socket:[N]) of pipes and sockets another process also holds: not the task's
   *  own (pipes.ts, unixpair.ts). */
  sharedPipes?: Set<string>;
}

const SAFE_CHAR_DEVICES = new Set(['1:3', '1:5', '1:7', '1:8', '1:9']); // null zero full random urandom
const isTtyMajor = (maj: number): boolean => maj === 4 || maj === 5 || (maj >= 136 && maj <= 143);

/** The processes among `pids` holding each pipe and socket (by fd link: pipe:[N], socket:[N]). */
function pipeAndSocketHolders(pids: number[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const p of pids) {
    let names: string[] = [];
    try { names = fs.readdirSync(procPath(p, 'fd')); } catch { continue; }
    for (const n of names) {
      const l = tryReadlink(procPath(p, `fd/${n}`));
      if (!l || !(l.startsWith('pipe:') || l.startsWith('socket:'))) continue;
      const a = out.get(l) ?? [];
      if (!a.includes(p)) a.push(p);
      out.set(l, a);
    }
  }
  return out;
}

/** Index of pipe/socket inodes and shared-anon mappings held by processes outside the tree (built on demand). */
class Outside {
  private links: Map<string, number[]> | null = null;
  private shmem: Map<string, number[]> | null = null;
  private inTree: Map<string, number[]> | null = null;
  private socks: Map<bigint, UnixSock> | null = null;
  private listeners: ReturnType<typeof tcpListeners> | null = null;
  constructor(readonly tree: Set<number>, readonly quick = false) {}

  /** Processes outside the tree that hold `link` (pipe:[N], socket:[N]). */
  holdersOfLink(link: string): number[] {
    if (this.quick) return [];
    this.links ??= pipeAndSocketHolders(allPids().filter((p) => !this.tree.has(p)));
    return this.links.get(link) ?? [];
  }

  /** The listening TCP sockets inet_diag reports (empty when it cannot be asked). */
  tcpListeners(): ReturnType<typeof tcpListeners> {
    if (!this.listeners) {
      try { this.listeners = tcpListeners(); } catch { this.listeners = new Map(); }
    }
    return this.listeners;
  }

  /** The UNIX sockets sock_diag reports (empty when it cannot be asked). */
  unixSockets(): Map<bigint, UnixSock> {
    if (!this.socks) {
      try { this.socks = unixSockets(); } catch { this.socks = new Map(); }
    }
    return this.socks;
  }

  /** Processes of the tree that hold `link` (pipe:[N], socket:[N]). */
  holdersInTree(link: string): number[] {
    this.inTree ??= pipeAndSocketHolders([...this.tree]);
    return this.inTree.get(link) ?? [];
  }

  holdersOfShmem(key: string): number[] {
    if (this.quick) return [];
    if (!this.shmem) {
      this.shmem = new Map();
      for (const p of allPids()) {
        if (this.tree.has(p)) continue;
        let maps: MapEntry[] = [];
        try { maps = readMaps(p, false); } catch { continue; }
        for (const m of maps) {
          if (!m.shared || !isSharedAnonPath(m.path)) continue;
          const k = `${m.devMajor}:${m.devMinor}:${m.inode}`;
          const a = this.shmem.get(k) ?? [];
          if (!a.includes(p)) a.push(p);
          this.shmem.set(k, a);
        }
      }
    }
    return this.shmem.get(key) ?? [];
  }
}

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

const others = (pids: number[]): string => (pids.length === 1 ? `process ${pids[0]}` : `processes ${pids.slice(0, 5).join(', ')}${pids.length > 5 ? ', ...' : ''}`);

function fdReasons(pid: number, f: FdInfo, all: FdInfo[], outside: Outside, add0: (code: NocrCode, text: string) => void, shared?: Set<string>): void {
  // standard input, output and error on a terminal or another process's pipe or socket: a note (STDIO)
  const add = (code: NocrCode, text: string): void => {
    if (f.fd <= 2 && (code === 'PIPE' || code === 'SOCKET' || code === 'FIFO' || code === 'TTY')) add0('STDIO', `${text}; \`crimg restore --inherit-stdio\` gives the restored task crimg's own`);
    else add0(code, text);
  };
  const what = `fd ${f.fd}`;
  const link = f.link;
  if (isInotify(link)) { // saved with its watches, unless events are queued or a watched file has no path
    const st = inotifyState(pid, f);
    if ('problem' in st) add('INOTIFY', `${what} is an inotify instance: ${st.problem}`);
    return;
  }
  const anon = anonInodeCode(link);
  const state = anonState(f, all);
  if (anon && state) { // an eventfd, timerfd, signalfd or epoll: saved unless something about it is not
    if ('problem' in state) add(anon, `${what} is ${link}: ${state.problem}`);
    return;
  }
  if (anon) {
    add(anon, `${what} is ${anon === 'ANON_INODE' ? `an anonymous-inode file (${link})` : `${link}`}, which crimg cannot save or rebuild`);
    return;
  }
  if (isMemfdPath(link)) { add('MEMFD', `${what} is a memfd (${link}); its contents are not saved`); return; }
  if (!f.stat) return;
  const t = fileType(f.stat.mode);
  if (t === S_IFSOCK) {
    const ext = outside.holdersOfLink(link);
    const mates = outside.holdersInTree(link).filter((p) => p !== pid);
    const ino = socketIno(link);
    if (!ext.length && !mates.length && ino !== null && sameNetNs(pid)) {
      const ls = listenState(pid, f, outside.tcpListeners());
      if (ls && 'listen' in ls) return; // an idle listening TCP socket: saved (listen.ts)
      if (ls) { add('SOCKET', `${what} is a listening TCP socket (${link}): ${ls.problem}`); return; }
    }
    if (!ext.length && !mates.length && ino !== null) {
      const socks = outside.unixSockets();
      const pairs = ownPairs(all.filter((x) => !outside.holdersOfLink(x.link).length), socks);
      if (pairs.has(ino) && pairSavable(ino, socks)) return; // a socketpair of the task's own: saved (unixpair.ts)
    }
    if (ext.length || mates.length) shared?.add(link);
    add('SOCKET', `${what} is a socket (${link})${ext.length ? ` also held by ${others(ext)} outside the tree` : ''}; its connection state and queued data are not saved`);
    return;
  }
  if (t === S_IFIFO) {
    if (link.startsWith('pipe:')) {
      const ext = outside.holdersOfLink(link);
      if (ext.length) shared?.add(link);
      if (ext.length) add('PIPE', `${what} is a pipe (${link}) also held by ${others(ext)} outside the tree`);
      // else: the task's own, or shared with other tasks of the tree only: saved with its bytes (pipes.ts; the tree
      // comes back with its pipes by restore --pid-ns --tree)
    } else {
      add('FIFO', `${what} is the named pipe ${link}; its data and the other end are not saved`);
    }
    return;
  }
  if (t === S_IFCHR || t === S_IFBLK) {
    const maj = devMajor(f.stat.rdev);
    const min = devMinor(f.stat.rdev);
    if (t === S_IFCHR && SAFE_CHAR_DEVICES.has(`${maj}:${min}`)) return;
    if (t === S_IFCHR && isTtyMajor(maj)) { add('TTY', `${what} is the terminal ${link}; terminal state is not saved`); return; }
    add('DEVICE', `${what} is the ${t === S_IFCHR ? 'character' : 'block'} device ${link} (${maj}:${min}); device state is not saved`);
    return;
  }
  // regular files and directories
  if (isDeletedPath(link) || f.stat.nlink === 0n) {
    add('FILE_DELETED', `${what} is the deleted file ${stripDeleted(link)}; it cannot be reopened`);
  } else if (link.startsWith('/')) {
    let same = false;
    try {
      const s = fs.statSync(link, { bigint: true });
      same = s.dev === f.stat.dev && s.ino === f.stat.ino;
    } catch { /* unreachable */ }
    if (!same) add('FILE_UNREACHABLE', `${what} is ${link}, but that path does not lead to the same file from crimg's view`);
  } else {
    add('FILE_UNREACHABLE', `${what} is ${link}, which has no path crimg can reopen`);
  }
  const odd = f.locks.filter((l) => !parseLockLine(l));
  if (odd.length) add('FILE_LOCK', `${what} (${link}) holds ${odd.length === 1 ? 'a lease or lock' : `${odd.length} leases or locks`} crimg cannot restore (${odd[0]!.trim()})`);
}

/** Whether a POSIX timer can be saved and restored (see the POSIX_TIMERS record). */
export function posixTimerSupported(t: ProcTimer): boolean {
  return POSIX_TIMER_CLOCKS.includes(t.clock) && (t.notify === SIGEV.SIGNAL || t.notify === SIGEV.NONE || t.notify === SIGEV.THREAD_ID);
}

function mapReasons(pid: number, maps: MapEntry[], outside: Outside, add: (code: NocrCode, text: string) => void): void {
  const seen = new Set<string>();
  const once = (code: NocrCode, key: string, text: string): void => {
    if (seen.has(`${code}:${key}`)) return;
    seen.add(`${code}:${key}`);
    add(code, text);
  };
  for (const m of maps) {
    const range = `0x${m.start.toString(16)}-0x${m.end.toString(16)}`;
    const p = m.path;
    if (m.vmflags.has('ht')) once('HUGETLB', range, `mapping ${range} (${p || 'anonymous'}) is hugetlb memory, which crimg does not support`);
    if ((m.vmflags.has('io') || m.vmflags.has('pf')) && !/^\[(vvar|vvar_vclock|vsyscall|vdso)\]$/.test(p)) once('DEVICE_MEMORY', range, `mapping ${range} (${p}) maps device memory`);
    if (p === '[aio]' || p.startsWith('/[aio]')) once('AIO', 'aio', `mapping ${range} is an AIO ring; in-flight requests are not saved`);
    if (isSysvShmPath(p)) { once('SYSV_SHM', p, `mapping ${range} is the System V shared memory segment ${p.split(' ')[0]} (key 0x${p.slice(5, 13)})`); continue; }
    if (isMemfdPath(p)) { once('MEMFD', p, `mapping ${range} maps the memfd ${stripDeleted(p)}; its contents outside the mapped pages are not saved`); continue; }
    if (m.shared && isSharedAnonPath(p)) {
      const ext = outside.holdersOfShmem(`${m.devMajor}:${m.devMinor}:${m.inode}`);
      if (ext.length) once('SHARED_ANON', range, `shared anonymous mapping ${range} is also mapped by ${others(ext)} outside the tree`);
      continue;
    }
    if (m.shared && p.startsWith('/dev/shm/')) { once('POSIX_SHM', p, `mapping ${range} maps the POSIX shared memory object ${stripDeleted(p)} shared`); continue; }
    if (p.startsWith('/') && isDeletedPath(p)) once('FILE_DELETED', p, `mapping ${range} maps the deleted file ${stripDeleted(p)}`);
  }
}

/** Every reason the tree rooted at the given processes cannot be checkpointed faithfully. */
export function checkProcesses(pids: number[], opts: CheckOptions = {}): NocrReason[] {
  const tree = new Set(pids);
  const outside = new Outside(tree, !!opts.quick);
  const out: NocrReason[] = [];
  const myNs = new Map<string, string | null>();
  for (const k of ['ipc', 'mnt', 'pid', 'net', 'user', 'cgroup', 'time', 'uts']) myNs.set(k, tryReadlink(`/proc/self/ns/${k}`));
  for (const pid of pids) {
    const add = (code: NocrCode, text: string): void => { out.push({ code, pid, text }); };
    try {
      const st = readStat(pid);
      if (st.flags & PF_KTHREAD) continue;
      if (st.state === 'Z') { add('ZOMBIE', `process ${pid} (${st.comm}) is a zombie`); continue; }
      const status = readStatus(pid);
      const tp = tracerPid(status);
      if (tp !== 0 && !(opts.selfTraced && tp === process.pid)) {
        let comm = '?';
        try { comm = readStat(tp).comm; } catch { /* gone */ }
        add('TRACED', `process ${pid} is traced by process ${tp} (${comm})`);
      }
      const seccomp = parseInt(status.get('Seccomp') ?? '0', 10) || 0;
      if (seccomp === 1) add('SECCOMP', `process ${pid} runs in seccomp strict mode`);
      if (seccomp === 2) {
        const n = status.get('Seccomp_filters');
        add('SECCOMP', `process ${pid} has ${n ? `${n} ` : ''}seccomp filter${n === '1' ? '' : 's'} installed, which crimg does not save`);
      }
      for (const t of readPosixTimers(pid).filter((x) => !posixTimerSupported(x))) {
        add('POSIX_TIMER', `process ${pid} has POSIX timer ${t.id} on clock ${t.clock} (notify ${t.notify}), which crimg cannot restore`);
      }
      const fds = opts.fds?.get(pid) ?? readFds(pid);
      for (const f of fds) fdReasons(pid, f, fds, outside, add, opts.sharedPipes);
      mapReasons(pid, opts.maps?.get(pid) ?? readMaps(pid, true), outside, add);
      const kids = listChildren(pid).filter((c) => !tree.has(c));
      if (kids.length) {
        const zombies = kids.filter((c) => { try { return readStat(c).state === 'Z'; } catch { return false; } });
        add(opts.tree ? 'ZOMBIE' : 'CHILDREN', opts.tree
          ? `process ${pid} has ${zombies.length === 1 ? 'a zombie child' : 'zombie children'} (${kids.join(', ')}) not yet reaped`
          : `process ${pid} has ${kids.length === 1 ? 'a child' : 'children'} (${kids.join(', ')}) that would not be restored (use --tree)`);
      }
      // namespaces of a container: shared with someone outside the tree?
      if (pid === pids[0]) {
        for (const [k, mine] of myNs) {
          const theirs = tryReadlink(procPath(pid, `ns/${k}`));
          if (!theirs || theirs === mine || opts.quick) continue;
          const ext: number[] = [];
          for (const p of allPids()) {
            if (tree.has(p) || ext.length >= 5) continue;
            if (tryReadlink(procPath(p, `ns/${k}`)) === theirs) ext.push(p);
          }
          if (ext.length) add('NS_SHARED', `the ${k} namespace ${theirs} of process ${pid} is shared with ${others(ext)} outside the tree`);
        }
      }
    } catch {
      add('VANISHED', `process ${pid} exited while crimg examined it`);
    }
  }
  return out;
}
