/**
 * Everything that makes an image impossible to restore on this host, found
 * before any process is created or touched: the executable and the mapped and
 * open files (present, same inode), kinds of VMA and fd crimg cannot rebuild,
 * reasons recorded at dump time, the vdso layout of this kernel and, once a stub
 * exists to ask, the XSAVE features of this CPU.
 */
import * as fs from 'node:fs';
import { FdKind, HeaderFlags, VmaFlags, type Model, type OpenFile, type Task, type Vma } from '../model.js';
import { devMajor, devMinor, readMaps, type MapEntry } from '../os/proc.js';
import { STDIO_DUMP_HINT } from '../kinds/live.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG } from '../os/consts.js';
import { type RestoreAt, type RestoreCode, type RestoreReason, formatReasons, reason } from './reasons.js';

export { type RestoreAt, type RestoreCode, type RestoreReason, formatReasons };

export interface CheckOptions {
  /** fds 0..2 that crimg cannot reopen (pipes, sockets, terminals that are gone) take crimg's own stdio. */
  inheritStdio?: boolean;
  /** With pidNs: the task and every task below it in the image (its process tree), each with its pid as the child
   *  of its parent (a parent's wait4 and kill reach it), pipes between them rebuilt (restore --pid-ns --tree). */
  tree?: boolean;
}

/** VMA names the kernel creates itself. */
export const SPECIAL_NAMES = ['[vvar]', '[vvar_vclock]', '[vdso]', '[vsyscall]', '[uprobes]'] as const;

export function isSpecialVma(v: Vma): boolean {
  if (v.flags & (VmaFlags.VDSO | VmaFlags.VVAR | VmaFlags.VSYSCALL)) return true;
  return v.path !== null && (SPECIAL_NAMES as readonly string[]).includes(v.path);
}

/** A VMA backed by a file crimg reopens by path. */
export function isFileVma(v: Vma): boolean {
  return !(v.flags & VmaFlags.ANON) && v.path !== null && v.path.startsWith('/') && !isSpecialVma(v);
}

/** The file type bits of a stat's mode. */
const typeOf = (st: fs.BigIntStats): number => Number(st.mode) & S_IFMT;

function statOrNull(p: string): fs.BigIntStats | null {
  try {
    return fs.statSync(p, { bigint: true });
  } catch {
    return null;
  }
}

/** The kernel's own special mappings ([vvar], [vvar_vclock], [vdso]) as seen in crimg's address space. */
export function hostSpecials(): MapEntry[] {
  return readMaps(process.pid, false).filter((m) => m.path === '[vvar]' || m.path === '[vvar_vclock]' || m.path === '[vdso]');
}

function sameFile(st: fs.BigIntStats, inode: bigint, major: number, minor: number): boolean {
  if (inode !== 0n && st.ino !== inode) return false;
  if ((major || minor) && (devMajor(st.dev) !== major || devMinor(st.dev) !== minor)) return false;
  return true;
}

/** True for fds crimg reopens by path (regular files, directories and character devices: /dev/null, ttys) or
 *  rebuilds (eventfd, timerfd, signalfd, epoll, the task's own pipes). */
export function fdReopenable(f: OpenFile): boolean {
  if (f.kind === FdKind.REGULAR || f.kind === FdKind.DIRECTORY || f.anon || f.pipe || f.unixPair || f.inotify || f.tcpListen) return true;
  if (!f.path.startsWith('/')) return false;
  const st = statOrNull(f.path);
  return st !== null && typeOf(st) === S_IFCHR;
}

/** Picks the task to restore: the one with `pid`, else the only one. */
export function pickTask(model: Model, pid?: number): { task: Task | null; reasons: RestoreReason[] } {
  if (pid !== undefined) {
    const t = model.tasks.find((x) => x.pid === pid);
    return t
      ? { task: t, reasons: [] }
      : { task: null, reasons: [reason('TASKS', { of: 'pid', task: pid }, `the image has no task with pid ${pid}`)] };
  }
  if (model.tasks.length === 1) return { task: model.tasks[0]!, reasons: [] };
  return {
    task: null,
    reasons: [
      reason(
        'TASKS',
        { of: 'image', task: 0 },
        model.tasks.length === 0
          ? 'the image holds no task'
          : `the image holds ${model.tasks.length} tasks; restoring process trees is not supported (pick one with --pid)`,
      ),
    ],
  };
}

/** All reasons the task cannot be restored here (empty: restorable as far as can be seen without a stub). */
export function checkTask(model: Model, task: Task, opts: CheckOptions = {}): RestoreReason[] {
  const out: RestoreReason[] = [];
  if (model.header.flags & HeaderFlags.SYNTHETIC)
    out.push(reason('SYNTHETIC', { of: 'image', task: 0 }, 'the image was made by `crimg gen`: it describes no real process'));
  out.push(...checkNocr(task, opts), ...checkThreads(task), ...checkCreds(task));
  if (task.root !== '' && task.root !== '/')
    out.push(
      reason(
        'ROOT',
        { of: 'root', task: task.pid, path: task.root },
        `the task ran chrooted in ${task.root}; restoring a root directory is not supported`,
      ),
    );
  out.push(...checkExe(task));
  if (task.cwd) {
    const st = statOrNull(task.cwd);
    if (!st || typeOf(st) !== S_IFDIR)
      out.push(reason('CWD_MISSING', { of: 'cwd', task: task.pid, path: task.cwd }, `the working directory ${task.cwd} does not exist`));
  }
  if (!task.mm) out.push(reason('NO_MM', { of: 'task', task: task.pid }, 'the task has no address space (kernel thread or zombie)'));
  else out.push(...checkVmas(task), ...checkVdsoLayout(task));
  for (const f of task.files) out.push(...checkFile(model, task, f, opts));
  return out;
}

/** Text of the hint crimg dump appends to a STDIO note (it does not apply to restore, which names its option). */
export { STDIO_DUMP_HINT };

/** The reasons recorded at dump time (NOCR records), those that hold for restore. */
function checkNocr(task: Task, opts: CheckOptions): RestoreReason[] {
  const out: RestoreReason[] = [];
  const vvarOnly = deviceMemoryIsVvar(task);
  for (const r of task.nocr) {
    const at: RestoreAt = { of: 'dump', task: task.pid, ...(r.pid !== task.pid ? { thread: r.pid } : {}) };
    // restore rebuilds the kernel's own vdso data mappings itself: a "device memory" reason about them does not apply
    if (r.code === 'DEVICE_MEMORY' && vvarOnly) continue;
    // stdin/stdout/stderr on another process's pipe, socket or terminal: crimg's own with --inherit-stdio
    if (r.code === 'STDIO') {
      const text = r.text.endsWith(STDIO_DUMP_HINT) ? r.text.slice(0, -STDIO_DUMP_HINT.length) : r.text;
      if (!opts.inheritStdio) out.push(reason('STDIO', at, `${text}: restore with --inherit-stdio to give the task crimg's own`));
      continue;
    }
    out.push(reason('NOCR', at, `recorded at dump time: ${r.code}: ${r.text}`));
  }
  return out;
}

/**
 * Whether the DEVICE_MEMORY reasons recorded for the task can only be about the kernel's [vvar] and [vvar_vclock]
 * (VM_IO / VM_PFNMAP mappings restore rebuilds itself): a dump records one per mapping, so there are no more of them
 * than the task has vvar mappings, and the task maps no other file that can hold device memory.
 */
function deviceMemoryIsVvar(task: Task): boolean {
  const n = task.nocr.filter((r) => r.code === 'DEVICE_MEMORY').length;
  if (!n || !task.mm) return false;
  const vvars = task.mm.vmas.filter((v) => v.flags & VmaFlags.VVAR || v.path === '[vvar]' || v.path === '[vvar_vclock]');
  return n <= vvars.length && !task.mm.vmas.some(mapsDevice);
}

/** A VMA restore would rebuild by mapping a file that can hold device memory: a device file (under /dev but for
 *  /dev/shm, or anywhere else; not /dev/zero, whose mappings are memory), or a file of sysfs or procfs (PCI
 *  resources). */
function mapsDevice(v: Vma): boolean {
  if (!isFileVma(v) || v.path === '/dev/zero') return false;
  const p = v.path!;
  if ((p.startsWith('/dev/') && !p.startsWith('/dev/shm/')) || p.startsWith('/sys/') || p.startsWith('/proc/')) return true;
  const st = statOrNull(p);
  return st !== null && (typeOf(st) === S_IFCHR || typeOf(st) === S_IFBLK);
}

function checkThreads(task: Task): RestoreReason[] {
  const out: RestoreReason[] = [];
  if (task.threads.length === 0) out.push(reason('REGS', { of: 'task', task: task.pid }, 'the task has no threads'));
  for (const th of task.threads) {
    if (th.regs[17] !== 0x33n || th.regs[20] !== 0x2bn) {
      out.push(
        reason(
          'REGS',
          { of: 'thread', task: task.pid, thread: th.tid },
          `cs 0x${th.regs[17]!.toString(16)} / ss 0x${th.regs[20]!.toString(16)} are not 64-bit user segments (32-bit tasks are not supported)`,
        ),
      );
    }
  }
  return out;
}

function checkExe(task: Task): RestoreReason[] {
  const at: RestoreAt = { of: 'exe', task: task.pid, ...(task.exe ? { path: task.exe } : {}) };
  const exeVma = task.mm?.vmas.find((v) => isFileVma(v) && v.path === task.exe);
  const exe = task.exe ? statOrNull(task.exe) : null;
  if (!task.exe) return [reason('EXE_MISSING', at, 'the image does not name the executable')];
  if (!exe) return [reason('EXE_MISSING', at, `the executable ${task.exe} does not exist`)];
  if (typeOf(exe) !== S_IFREG) return [reason('EXE_MISSING', at, `the executable ${task.exe} is not a regular file`)];
  if (exeVma && !sameFile(exe, exeVma.inode, exeVma.devMajor, exeVma.devMinor)) {
    return [
      reason('EXE_CHANGED', at, `the executable ${task.exe} was replaced since the dump (inode ${exe.ino}, image has ${exeVma.inode})`),
    ];
  }
  return [];
}

/** The VMAs: kinds crimg cannot rebuild, mapped files gone or replaced (one reason per file). */
function checkVmas(task: Task): RestoreReason[] {
  const out: RestoreReason[] = [];
  const seen = new Map<string, boolean>();
  for (const v of task.mm!.vmas) {
    const at: RestoreAt = { of: 'vma', task: task.pid, vma: v.start, end: v.end, ...(v.path ? { path: v.path } : {}) };
    const add = (code: RestoreCode, text: string): void => {
      out.push(reason(code, at, text));
    };
    if (v.flags & VmaFlags.HUGETLB) {
      add('VMA_UNSUPPORTED', 'hugetlb mappings are not supported');
      continue;
    }
    if (v.flags & VmaFlags.FILE_DELETED) {
      add('VMA_UNSUPPORTED', 'the mapped file was deleted (or is memfd / SysV shared memory)');
      continue;
    }
    if (v.start >= v.end || v.start & 0xfffn || v.end & 0xfffn) {
      add('VMA_UNSUPPORTED', 'the bounds are not page-aligned');
      continue;
    }
    if (isSpecialVma(v)) continue;
    if (v.flags & VmaFlags.ANON) continue;
    if (v.path === null || !v.path.startsWith('/')) {
      if (v.path?.startsWith('[')) continue; // [heap], [stack], [anon:name]: anonymous memory
      add('VMA_UNSUPPORTED', 'the mapping has no file path crimg could reopen');
      continue;
    }
    const key = `${v.path}\0${v.inode}`;
    if (seen.has(key)) {
      if (!seen.get(key)) continue;
    } // one reason per file
    const st = statOrNull(v.path);
    let ok = true;
    if (!st) {
      add('FILE_MISSING', `the mapped file ${v.path} does not exist`);
      ok = false;
    } else if (!sameFile(st, v.inode, v.devMajor, v.devMinor)) {
      add('FILE_CHANGED', `the mapped file ${v.path} was replaced since the dump (inode ${st.ino}, image has ${v.inode})`);
      ok = false;
    }
    seen.set(key, ok);
  }
  return out;
}

/** The kernel's vdso layout must be the one of the image. */
function checkVdsoLayout(task: Task): RestoreReason[] {
  const out: RestoreReason[] = [];
  const host = hostSpecials();
  const img = task.mm!.vmas.filter((v) => v.path === '[vvar]' || v.path === '[vvar_vclock]' || v.path === '[vdso]');
  const hostVdso = host.find((m) => m.path === '[vdso]');
  const imgVdso = img.find((v) => v.path === '[vdso]');
  if (imgVdso && !hostVdso)
    out.push(reason('VDSO_MISMATCH', { of: 'vdso', task: task.pid }, 'the image has a vdso but this kernel maps none'));
  if (!imgVdso || !hostVdso) return out;
  const rel = (d: bigint): string => `vdso${d >= 0n ? '+' : ''}${d}`;
  for (const v of img) {
    const at: RestoreAt = { of: 'vdso', task: task.pid, vma: v.start, end: v.end, path: v.path! };
    const h = host.find((m) => m.path === v.path);
    const relImg = v.start - imgVdso.start;
    if (!h) {
      out.push(reason('VDSO_MISMATCH', at, `this kernel has no ${v.path} mapping`));
      continue;
    }
    if (h.end - h.start !== v.end - v.start || h.start - hostVdso.start !== relImg) {
      out.push(
        reason(
          'VDSO_MISMATCH',
          at,
          `${v.path} of the image (${v.end - v.start} bytes at ${rel(relImg)}) differs from this kernel's (${h.end - h.start} bytes at ${rel(h.start - hostVdso.start)}): restore on the kernel that made the image`,
        ),
      );
    }
  }
  for (const h of host) {
    if (!img.some((v) => v.path === h.path))
      out.push(
        reason(
          'VDSO_MISMATCH',
          { of: 'vdso', task: task.pid, path: h.path },
          `the image lacks this kernel's ${h.path} mapping: restore on the kernel that made the image`,
        ),
      );
  }
  return out;
}

/** One open file: reopenable (present, same inode, not shrunk) or rebuildable. */
function checkFile(model: Model, task: Task, f: OpenFile, opts: CheckOptions): RestoreReason[] {
  const at: RestoreAt = { of: 'fd', task: task.pid, fd: f.fd, ...(f.path ? { path: f.path } : {}) };
  if (f.kind === FdKind.REGULAR || f.kind === FdKind.DIRECTORY) {
    const st = statOrNull(f.path);
    const dir = f.kind === FdKind.DIRECTORY;
    if (!st) return [reason('FILE_MISSING', at, `${dir ? 'directory' : 'file'} ${f.path} does not exist`)];
    if (typeOf(st) !== (dir ? S_IFDIR : S_IFREG))
      return [reason('FILE_CHANGED', at, `${f.path} is no longer a ${dir ? 'directory' : 'regular file'}`)];
    if (!sameFile(st, f.inode, f.devMajor, f.devMinor))
      return [reason('FILE_CHANGED', at, `${f.path} was replaced since the dump (inode ${st.ino}, image has ${f.inode})`)];
    if (!dir && st.size < f.pos && (f.flags & 3) === 0)
      return [reason('FILE_CHANGED', at, `${f.path} shrank to ${st.size} bytes, below the saved position ${f.pos}`)];
    return [];
  }
  const out: RestoreReason[] = [];
  if (f.pipe && !opts.tree) {
    const mate = model.tasks.find((t) => t !== task && t.files.some((x) => x.pipe?.ino === f.pipe!.ino));
    if (mate) out.push(reason('PIPE', at, `a pipe task ${mate.pid} of the image holds too: restore the tree with --pid-ns --tree`));
  }
  for (const w of f.inotify ?? [])
    if (!statOrNull(w.path)) out.push(reason('FILE_MISSING', at, `the file ${w.path} inotify watch ${w.wd} is on does not exist`));
  if (fdReopenable(f) || (opts.inheritStdio && f.fd <= 2)) return out;
  out.push(
    reason(
      'FD_UNSUPPORTED',
      at,
      `${f.path} cannot be reopened (only regular files, directories and device files can${f.fd <= 2 ? "; --inherit-stdio gives it crimg's own" : ''})`,
    ),
  );
  return out;
}

/** Capabilities of crimg itself, from /proc/self/status. */
export function ownCaps(): { prm: bigint; bnd: bigint } {
  const t = fs.readFileSync('/proc/self/status', 'latin1');
  const get = (k: string): bigint => {
    const m = new RegExp(`^${k}:\\s*([0-9a-f]+)`, 'm').exec(t);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  return { prm: get('CapPrm'), bnd: get('CapBnd') };
}

/** Credentials crimg can give the task: its uids, gids and groups (as root), a smaller bounding set, no_new_privs;
 *  the capabilities must be those that follow from the uids (all of crimg's for root, none for other users). */
export function checkCreds(task: Task): RestoreReason[] {
  const c = task.creds;
  const out: RestoreReason[] = [];
  const add = (text: string): void => {
    out.push(reason('CREDS', { of: 'creds', task: task.pid }, text));
  };
  const uids = [c.uid, c.euid, c.suid, c.fsuid],
    gids = [c.gid, c.egid, c.sgid, c.fsgid];
  const me = process.getuid?.() ?? 0,
    myGid = process.getgid?.() ?? 0;
  if (me !== 0 && (uids.some((u) => u !== me) || gids.some((g) => g !== myGid))) {
    add(`the task ran as uid ${c.uid} gid ${c.gid}; only root can restore it as another user than ${me}/${myGid}`);
    return out;
  }
  const own = ownCaps();
  if (c.euid === 0) {
    if (c.capPrm !== own.prm || c.capEff !== own.prm)
      add(
        `the root task had capabilities 0x${c.capEff.toString(16)} (permitted 0x${c.capPrm.toString(16)}), crimg has 0x${own.prm.toString(16)}: restoring other capability sets is not supported`,
      );
  } else if (c.capPrm || c.capEff || c.capAmb) {
    add(
      `the task of uid ${c.euid} had capabilities (effective 0x${c.capEff.toString(16)}, ambient 0x${c.capAmb.toString(16)}): restoring them is not supported`,
    );
  }
  if (c.capBnd & ~own.bnd)
    add(`the task's capability bounding set 0x${c.capBnd.toString(16)} is larger than crimg's 0x${own.bnd.toString(16)}`);
  return out;
}

/** XSAVE state the host cannot hold: components set in the image's XSTATE_BV that XCR0 of this CPU lacks. */
export function checkXsave(task: Task, hostXcr0: bigint | null): RestoreReason[] {
  const out: RestoreReason[] = [];
  for (const th of task.threads) {
    if (!th.xstate || th.xstate.ext.length < 8) continue;
    const bv = new DataView(th.xstate.ext.buffer, th.xstate.ext.byteOffset, 8).getBigUint64(0, true);
    const missing = hostXcr0 === null ? bv & ~3n : bv & ~hostXcr0;
    if (missing) {
      const at: RestoreAt = { of: 'thread', task: task.pid, thread: th.tid };
      out.push(
        reason(
          'XSAVE_FEATURES',
          at,
          `the thread uses XSAVE components 0x${missing.toString(16)} that this CPU (XCR0 0x${(hostXcr0 ?? 3n).toString(16)}) lacks`,
        ),
      );
    }
  }
  return out;
}
