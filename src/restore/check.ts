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

export interface RestoreReason {
  /** Stable code: SYNTHETIC, TASKS, NO_MM, EXE_MISSING, EXE_CHANGED, FILE_MISSING, FILE_CHANGED, VMA_UNSUPPORTED,
   *  VDSO_MISMATCH, FD_UNSUPPORTED, NOCR, REGS, XSAVE_FEATURES, ROOT, CWD_MISSING, CREDS. */
  code: string;
  /** What it applies to: "exe", "vma 0x...", "fd N", "thread T", "cwd". */
  where: string;
  text: string;
}

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

const hex = (v: bigint): string => `0x${v.toString(16)}`;

function statOrNull(p: string): fs.BigIntStats | null {
  try { return fs.statSync(p, { bigint: true }); } catch { return null; }
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
  return st !== null && (st.mode & 0o170000n) === 0o020000n;
}

/** Picks the task to restore: the one with `pid`, else the only one. */
export function pickTask(model: Model, pid?: number): { task: Task | null; reasons: RestoreReason[] } {
  if (pid !== undefined) {
    const t = model.tasks.find((x) => x.pid === pid);
    return t ? { task: t, reasons: [] } : { task: null, reasons: [{ code: 'TASKS', where: `pid ${pid}`, text: `the image has no task with pid ${pid}` }] };
  }
  if (model.tasks.length === 1) return { task: model.tasks[0]!, reasons: [] };
  return {
    task: null,
    reasons: [{ code: 'TASKS', where: 'image', text: model.tasks.length === 0 ? 'the image holds no task' : `the image holds ${model.tasks.length} tasks; restoring process trees is not supported (pick one with --pid)` }],
  };
}

/** All reasons the task cannot be restored here (empty: restorable as far as can be seen without a stub). */
export function checkTask(model: Model, task: Task, opts: CheckOptions = {}): RestoreReason[] {
  const out: RestoreReason[] = [];
  const add = (code: string, where: string, text: string): void => { out.push({ code, where, text }); };
  if (model.header.flags & HeaderFlags.SYNTHETIC) add('SYNTHETIC', 'image', 'the image was made by `crimg gen`: it describes no real process');
  for (const r of task.nocr) {
    // restore rebuilds the kernel's own vdso data mappings itself: a "device memory" reason about them does not apply
    if (r.code === 'DEVICE_MEMORY' && /\((\[vvar\]|\[vvar_vclock\])\)/.test(r.text)) continue;
    // stdin/stdout/stderr on another process's pipe, socket or terminal: crimg's own with --inherit-stdio
    if (r.code === 'STDIO') {
      if (!opts.inheritStdio) add('STDIO', `task ${r.pid}`, `${r.text.replace(/; `crimg restore --inherit-stdio`.*$/, '')}: restore with --inherit-stdio to give the task crimg's own`);
      continue;
    }
    add('NOCR', `task ${r.pid}`, `recorded at dump time: ${r.code}: ${r.text}`);
  }
  if (task.threads.length === 0) add('REGS', 'task', 'the task has no threads');
  for (const th of task.threads) {
    if (th.regs[17] !== 0x33n || th.regs[20] !== 0x2bn) add('REGS', `thread ${th.tid}`, `cs 0x${th.regs[17]!.toString(16)} / ss 0x${th.regs[20]!.toString(16)} are not 64-bit user segments (32-bit tasks are not supported)`);
  }
  for (const r of checkCreds(task)) out.push(r);
  if (task.root !== '' && task.root !== '/') add('ROOT', 'root', `the task ran chrooted in ${task.root}; restoring a root directory is not supported`);

  // executable
  const exeVma = task.mm?.vmas.find((v) => isFileVma(v) && v.path === task.exe);
  const exe = task.exe ? statOrNull(task.exe) : null;
  if (!task.exe) add('EXE_MISSING', 'exe', 'the image does not name the executable');
  else if (!exe) add('EXE_MISSING', 'exe', `the executable ${task.exe} does not exist`);
  else if ((exe.mode & 0o170000n) !== 0o100000n) add('EXE_MISSING', 'exe', `the executable ${task.exe} is not a regular file`);
  else if (exeVma && !sameFile(exe, exeVma.inode, exeVma.devMajor, exeVma.devMinor)) add('EXE_CHANGED', 'exe', `the executable ${task.exe} was replaced since the dump (inode ${exe.ino}, image has ${exeVma.inode})`);

  // cwd
  if (task.cwd) {
    const st = statOrNull(task.cwd);
    if (!st || (st.mode & 0o170000n) !== 0o040000n) add('CWD_MISSING', 'cwd', `the working directory ${task.cwd} does not exist`);
  }

  // memory
  if (!task.mm) add('NO_MM', 'task', 'the task has no address space (kernel thread or zombie)');
  else {
    const seen = new Map<string, boolean>();
    for (const v of task.mm.vmas) {
      const where = `vma ${hex(v.start)}-${hex(v.end)}${v.path ? ` ${v.path}` : ''}`;
      if (v.flags & VmaFlags.HUGETLB) { add('VMA_UNSUPPORTED', where, 'hugetlb mappings are not supported'); continue; }
      if (v.flags & VmaFlags.FILE_DELETED) { add('VMA_UNSUPPORTED', where, 'the mapped file was deleted (or is memfd / SysV shared memory)'); continue; }
      if (v.start >= v.end || (v.start & 0xfffn) || (v.end & 0xfffn)) { add('VMA_UNSUPPORTED', where, 'the bounds are not page-aligned'); continue; }
      if (isSpecialVma(v)) continue;
      if (v.flags & VmaFlags.ANON) continue;
      if (v.path === null || !v.path.startsWith('/')) {
        if (v.path !== null && v.path.startsWith('[')) continue; // [heap], [stack], [anon:name]: anonymous memory
        add('VMA_UNSUPPORTED', where, 'the mapping has no file path crimg could reopen');
        continue;
      }
      const key = `${v.path}\0${v.inode}`;
      if (seen.has(key)) { if (!seen.get(key)) continue; } // one reason per file
      const st = statOrNull(v.path);
      let ok = true;
      if (!st) { add('FILE_MISSING', where, `the mapped file ${v.path} does not exist`); ok = false; }
      else if (!sameFile(st, v.inode, v.devMajor, v.devMinor)) { add('FILE_CHANGED', where, `the mapped file ${v.path} was replaced since the dump (inode ${st.ino}, image has ${v.inode})`); ok = false; }
      seen.set(key, ok);
    }
    // the kernel's vdso layout must be the one of the image
    const host = hostSpecials();
    const img = task.mm.vmas.filter((v) => v.path === '[vvar]' || v.path === '[vvar_vclock]' || v.path === '[vdso]');
    const hostVdso = host.find((m) => m.path === '[vdso]');
    const imgVdso = img.find((v) => v.path === '[vdso]');
    if (imgVdso && !hostVdso) add('VDSO_MISMATCH', 'vdso', 'the image has a vdso but this kernel maps none');
    if (imgVdso && hostVdso) {
      for (const v of img) {
        const h = host.find((m) => m.path === v.path);
        const relImg = v.start - imgVdso.start;
        if (!h) { add('VDSO_MISMATCH', v.path!, `this kernel has no ${v.path} mapping`); continue; }
        if (h.end - h.start !== v.end - v.start || h.start - hostVdso.start !== relImg) {
          add('VDSO_MISMATCH', v.path!, `${v.path} of the image (${v.end - v.start} bytes at vdso${relImg >= 0n ? '+' : ''}${relImg}) differs from this kernel's (${h.end - h.start} bytes at vdso${h.start - hostVdso.start >= 0n ? '+' : ''}${h.start - hostVdso.start}): restore on the kernel that made the image`);
        }
      }
      for (const h of host) {
        if (!img.some((v) => v.path === h.path)) add('VDSO_MISMATCH', h.path, `the image lacks this kernel's ${h.path} mapping: restore on the kernel that made the image`);
      }
    }
  }

  // files
  for (const f of task.files) {
    const where = `fd ${f.fd}`;
    if (f.kind === FdKind.REGULAR || f.kind === FdKind.DIRECTORY) {
      const st = statOrNull(f.path);
      const dir = f.kind === FdKind.DIRECTORY;
      if (!st) { add('FILE_MISSING', where, `${dir ? 'directory' : 'file'} ${f.path} does not exist`); continue; }
      if ((st.mode & 0o170000n) !== (dir ? 0o040000n : 0o100000n)) { add('FILE_CHANGED', where, `${f.path} is no longer a ${dir ? 'directory' : 'regular file'}`); continue; }
      if (!sameFile(st, f.inode, f.devMajor, f.devMinor)) { add('FILE_CHANGED', where, `${f.path} was replaced since the dump (inode ${st.ino}, image has ${f.inode})`); continue; }
      if (!dir && st.size < f.pos && (f.flags & 3) === 0) add('FILE_CHANGED', where, `${f.path} shrank to ${st.size} bytes, below the saved position ${f.pos}`);
      continue;
    }
    if (f.pipe && !opts.tree) {
      const mate = model.tasks.find((t) => t !== task && t.files.some((x) => x.pipe?.ino === f.pipe!.ino));
      if (mate) add('PIPE', where, `a pipe task ${mate.pid} of the image holds too: restore the tree with --pid-ns --tree`);
    }
    for (const w of f.inotify ?? []) if (!statOrNull(w.path)) add('FILE_MISSING', where, `the file ${w.path} inotify watch ${w.wd} is on does not exist`);
    if (fdReopenable(f)) continue;
    if (opts.inheritStdio && f.fd <= 2) continue;
    add('FD_UNSUPPORTED', where, `${f.path} cannot be reopened (only regular files, directories and device files can${f.fd <= 2 ? '; --inherit-stdio gives it crimg\'s own' : ''})`);
  }
  return out;
}

/** Capabilities of crimg itself, from /proc/self/status. */
export function ownCaps(): { prm: bigint; bnd: bigint } {
  const t = fs.readFileSync('/proc/self/status', 'latin1');
  const get = (k: string): bigint => { const m = new RegExp(`^${k}:\\s*([0-9a-f]+)`, 'm').exec(t); return m ? BigInt(`0x${m[1]}`) : 0n; };
  return { prm: get('CapPrm'), bnd: get('CapBnd') };
}

/** Credentials crimg can give the task: its uids, gids and groups (as root), a smaller bounding set, no_new_privs;
 *  the capabilities must be those that follow from the uids (all of crimg's for root, none for other users). */
export function checkCreds(task: Task): RestoreReason[] {
  const c = task.creds;
  const out: RestoreReason[] = [];
  const uids = [c.uid, c.euid, c.suid, c.fsuid], gids = [c.gid, c.egid, c.sgid, c.fsgid];
  const me = process.getuid?.() ?? 0, myGid = process.getgid?.() ?? 0;
  if (me !== 0 && (uids.some((u) => u !== me) || gids.some((g) => g !== myGid))) {
    out.push({ code: 'CREDS', where: 'creds', text: `the task ran as uid ${c.uid} gid ${c.gid}; only root can restore it as another user than ${me}/${myGid}` });
    return out;
  }
  const own = ownCaps();
  if (c.euid === 0) {
    if (c.capPrm !== own.prm || c.capEff !== own.prm) out.push({ code: 'CREDS', where: 'creds', text: `the root task had capabilities 0x${c.capEff.toString(16)} (permitted 0x${c.capPrm.toString(16)}), crimg has 0x${own.prm.toString(16)}: restoring other capability sets is not supported` });
  } else if (c.capPrm || c.capEff || c.capAmb) {
    out.push({ code: 'CREDS', where: 'creds', text: `the task of uid ${c.euid} had capabilities (effective 0x${c.capEff.toString(16)}, ambient 0x${c.capAmb.toString(16)}): restoring them is not supported` });
  }
  if (c.capBnd & ~own.bnd) out.push({ code: 'CREDS', where: 'creds', text: `the task's capability bounding set 0x${c.capBnd.toString(16)} is larger than crimg's 0x${own.bnd.toString(16)}` });
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
      out.push({ code: 'XSAVE_FEATURES', where: `thread ${th.tid}`, text: `the thread uses XSAVE components 0x${missing.toString(16)} that this CPU (XCR0 0x${(hostXcr0 ?? 3n).toString(16)}) lacks` });
    }
  }
  return out;
}

/** The reasons as one line: the first three, then how many more (all of them: `crimg restore --check`). */
export function formatReasons(r: RestoreReason[]): string {
  const shown = r.slice(0, 3).map((x) => `${x.code} (${x.where}): ${x.text}`).join('; ');
  return r.length > 3 ? `${shown}; and ${r.length - 3} more (see crimg restore --check)` : shown;
}
