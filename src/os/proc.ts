/**
 * Readers for /proc/PID/*: the raw facts live checkpoint and `crimg check` are
 * built from. Every function reads synchronously and throws Node errors
 * (ENOENT when the process is gone); callers map them to CrimgErrors.
 */
import * as fs from 'node:fs';
import { type Credentials, type NamespaceIds, type Rlimit, NS_KINDS, RLIM_INFINITY, emptyNsIds } from '../model.js';
import { S_IFMT } from './consts.js';

export function procPath(pid: number, rest = ''): string {
  return `/proc/${pid}${rest ? `/${rest}` : ''}`;
}

export function readText(path: string): string {
  return fs.readFileSync(path, 'latin1');
}
export function readBytes(path: string): Buffer {
  return fs.readFileSync(path);
}

export function tryReadlink(path: string): string | null {
  try {
    return fs.readlinkSync(path);
  } catch {
    return null;
  }
}

export function exists(pid: number): boolean {
  try {
    fs.statSync(procPath(pid));
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ stat

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  ttyNr: number;
  flags: number;
  numThreads: number;
  startCode: bigint;
  endCode: bigint;
  startStack: bigint;
  exitSignal: number;
  startData: bigint;
  endData: bigint;
  startBrk: bigint;
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
}

export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const pid = parseInt(text.slice(0, open), 10);
  const comm = text.slice(open + 1, close);
  const f = text
    .slice(close + 2)
    .trim()
    .split(/\s+/); // f[0] = field 3 (state)
  const n = (i: number): number => Number(f[i - 3] ?? 0);
  const b = (i: number): bigint => BigInt(f[i - 3] ?? 0);
  return {
    pid,
    comm,
    state: f[0] ?? '?',
    ppid: n(4),
    pgrp: n(5),
    session: n(6),
    ttyNr: n(7),
    flags: n(9),
    numThreads: n(20),
    startCode: b(26),
    endCode: b(27),
    startStack: b(28),
    exitSignal: n(38),
    startData: b(45),
    endData: b(46),
    startBrk: b(47),
    argStart: b(48),
    argEnd: b(49),
    envStart: b(50),
    envEnd: b(51),
  };
}

export function readStat(pid: number, tid?: number): ProcStat {
  return parseStat(readText(tid === undefined ? procPath(pid, 'stat') : procPath(pid, `task/${tid}/stat`)));
}

// ------------------------------------------------------------------ status

export type Status = Map<string, string>;

export function readStatus(pid: number, tid?: number): Status {
  const m: Status = new Map();
  const text = readText(tid === undefined ? procPath(pid, 'status') : procPath(pid, `task/${tid}/status`));
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

const hexBig = (s: string | undefined): bigint => (s ? BigInt(`0x${s}`) : 0n);
const ints = (s: string | undefined): number[] =>
  s
    ? s
        .split(/\s+/)
        .filter(Boolean)
        .map((x) => parseInt(x, 10))
    : [];

export function statusCreds(st: Status): Credentials {
  const [uid = 0, euid = 0, suid = 0, fsuid = 0] = ints(st.get('Uid'));
  const [gid = 0, egid = 0, sgid = 0, fsgid = 0] = ints(st.get('Gid'));
  return {
    uid,
    gid,
    euid,
    egid,
    suid,
    sgid,
    fsuid,
    fsgid,
    groups: ints(st.get('Groups')),
    capInh: hexBig(st.get('CapInh')),
    capPrm: hexBig(st.get('CapPrm')),
    capEff: hexBig(st.get('CapEff')),
    capBnd: hexBig(st.get('CapBnd')),
    capAmb: hexBig(st.get('CapAmb')),
    securebits: 0, // not exported by /proc; see docs/LIVE.md
    noNewPrivs: parseInt(st.get('NoNewPrivs') ?? '0', 10) || 0,
    seccompMode: parseInt(st.get('Seccomp') ?? '0', 10) || 0,
  };
}

export function statusSigPending(st: Status): { thread: bigint; shared: bigint; blocked: bigint } {
  return { thread: hexBig(st.get('SigPnd')), shared: hexBig(st.get('ShdPnd')), blocked: hexBig(st.get('SigBlk')) };
}

export function tracerPid(st: Status): number {
  return parseInt(st.get('TracerPid') ?? '0', 10) || 0;
}

// ------------------------------------------------------------------ tasks and children

export function listTasks(pid: number): number[] {
  return fs
    .readdirSync(procPath(pid, 'task'))
    .map((s) => parseInt(s, 10))
    .filter((n) => n > 0)
    .sort((a, b) => a - b);
}

/** Direct children of a process (all its threads' children). */
export function listChildren(pid: number): number[] {
  const out = new Set<number>();
  let tids: number[] = [];
  try {
    tids = listTasks(pid);
  } catch {
    return [];
  }
  let viaFile = true;
  for (const tid of tids) {
    try {
      for (const s of readText(procPath(pid, `task/${tid}/children`)).split(/\s+/)) if (s) out.add(parseInt(s, 10));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && exists(pid)) {
        viaFile = false;
        break;
      }
    }
  }
  if (!viaFile) {
    // kernels without CONFIG_PROC_CHILDREN: scan every process's ppid
    for (const p of allPids()) {
      try {
        if (readStat(p).ppid === pid) out.add(p);
      } catch {
        /* gone */
      }
    }
  }
  return [...out].sort((a, b) => a - b);
}

export function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((s) => /^\d+$/.test(s))
    .map((s) => parseInt(s, 10));
}

// ------------------------------------------------------------------ small files

export function readNulList(path: string): string[] {
  const s = fs.readFileSync(path).toString('utf8');
  const parts = s.split('\0');
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function readAuxv(pid: number): bigint[] {
  const b = readBytes(procPath(pid, 'auxv'));
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: bigint[] = [];
  for (let o = 0; o + 16 <= b.length; o += 16) {
    const t = dv.getBigUint64(o, true);
    if (t === 0n) break;
    out.push(t, dv.getBigUint64(o + 8, true));
  }
  return out;
}

export function readPersonality(pid: number): number {
  try {
    return parseInt(readText(procPath(pid, 'personality')).trim(), 16) || 0;
  } catch {
    return 0;
  }
}

/** /proc/PID/limits: 16 rows in RLIMIT_* order. */
export function readLimits(pid: number): Rlimit[] {
  const lines = readText(procPath(pid, 'limits'))
    .split('\n')
    .slice(1)
    .filter((l) => l.startsWith('Max '));
  const v = (s: string): bigint => (s === 'unlimited' ? RLIM_INFINITY : BigInt(s));
  return lines.map((l) => {
    const cols = l.slice(26).trim().split(/\s+/);
    return { cur: v(cols[0]!), max: v(cols[1]!) };
  });
}

export function readNsIds(pid: number): NamespaceIds {
  const ids = emptyNsIds();
  for (const k of NS_KINDS) {
    const l = tryReadlink(procPath(pid, `ns/${k}`));
    const m = l ? /\[(\d+)\]/.exec(l) : null;
    if (m) ids[k] = BigInt(m[1]!);
  }
  return ids;
}

// ------------------------------------------------------------------ maps / smaps

export interface MapEntry {
  start: bigint;
  end: bigint;
  read: boolean;
  write: boolean;
  exec: boolean;
  shared: boolean;
  offset: bigint;
  devMajor: number;
  devMinor: number;
  inode: bigint;
  /** Path as the kernel prints it (may end in " (deleted)"), '' for anonymous. */
  path: string;
  /** From smaps (0 / empty when only maps was read). */
  rss: number;
  swap: number;
  kernelPageKb: number;
  vmflags: Set<string>;
}

const MAP_RE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)\s*(.*)$/;

/** /proc/PID/smaps (or maps with smaps: false). */
export function readMaps(pid: number, smaps = true): MapEntry[] {
  const text = readText(procPath(pid, smaps ? 'smaps' : 'maps'));
  const out: MapEntry[] = [];
  let cur: MapEntry | null = null;
  for (const line of text.split('\n')) {
    const m = MAP_RE.exec(line);
    if (m) {
      cur = {
        start: BigInt(`0x${m[1]}`),
        end: BigInt(`0x${m[2]}`),
        read: m[3] === 'r',
        write: m[4] === 'w',
        exec: m[5] === 'x',
        shared: m[6] === 's',
        offset: BigInt(`0x${m[7]}`),
        devMajor: parseInt(m[8]!, 16),
        devMinor: parseInt(m[9]!, 16),
        inode: BigInt(m[10]!),
        path: m[11] ?? '',
        rss: 0,
        swap: 0,
        kernelPageKb: 4,
        vmflags: new Set(),
      };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const i = line.indexOf(':');
    if (i < 0) continue;
    const key = line.slice(0, i);
    const val = line.slice(i + 1).trim();
    if (key === 'Rss') cur.rss = parseInt(val, 10) || 0;
    else if (key === 'Swap') cur.swap = parseInt(val, 10) || 0;
    else if (key === 'KernelPageSize') cur.kernelPageKb = parseInt(val, 10) || 4;
    else if (key === 'VmFlags') cur.vmflags = new Set(val.split(/\s+/).filter(Boolean));
  }
  return out;
}

export const DELETED = ' (deleted)';
export function isDeletedPath(p: string): boolean {
  return p.endsWith(DELETED);
}
export function stripDeleted(p: string): string {
  return isDeletedPath(p) ? p.slice(0, -DELETED.length) : p;
}

/** Shared anonymous memory as maps shows it: "/dev/zero (deleted)", "/SYSV... (deleted)" is SysV SHM. */
export function isSharedAnonPath(p: string): boolean {
  return p === '/dev/zero (deleted)' || p.startsWith('[anon_shmem:');
}
export function isSysvShmPath(p: string): boolean {
  return /^\/SYSV[0-9a-f]{8}( \(deleted\))?$/.test(p);
}
export function isMemfdPath(p: string): boolean {
  return p.startsWith('/memfd:');
}
export function isPseudoPath(p: string): boolean {
  return p.startsWith('[') && p.endsWith(']');
}

// ------------------------------------------------------------------ file descriptors

export interface FdInfo {
  fd: number;
  /** readlink of /proc/PID/fd/N */
  link: string;
  stat: fs.BigIntStats | null;
  pos: bigint;
  /** open(2) flags as fdinfo prints them (octal), including O_CLOEXEC. */
  flags: number;
  mntId: number;
  /** "lock:" lines of fdinfo. */
  locks: string[];
  /** "tfd:" lines of an epoll's fdinfo (its interest list), after the "tfd:". */
  tfds: string[];
  /** "inotify wd:..." lines of an inotify instance's fdinfo (its watches), whole. */
  inotify: string[];
  /** Extra fdinfo lines (eventfd-count, inotify wd ...). */
  extra: Map<string, string>;
}

export function readFds(pid: number): FdInfo[] {
  const names = fs.readdirSync(procPath(pid, 'fd'));
  const out: FdInfo[] = [];
  for (const n of names) {
    const fd = parseInt(n, 10);
    if (!(fd >= 0)) continue;
    const link = tryReadlink(procPath(pid, `fd/${fd}`));
    if (link === null) continue; // closed meanwhile
    let stat: fs.BigIntStats | null = null;
    try {
      stat = fs.statSync(procPath(pid, `fd/${fd}`), { bigint: true });
    } catch {
      /* e.g. closed */
    }
    const info: FdInfo = { fd, link, stat, pos: 0n, flags: 0, mntId: 0, locks: [], tfds: [], inotify: [], extra: new Map() };
    try {
      for (const line of readText(procPath(pid, `fdinfo/${fd}`)).split('\n')) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i);
        const v = line.slice(i + 1).trim();
        if (k === 'pos') info.pos = BigInt(v || '0');
        else if (k === 'flags') info.flags = parseInt(v, 8) || 0;
        else if (k === 'mnt_id') info.mntId = parseInt(v, 10) || 0;
        else if (k === 'lock') info.locks.push(v);
        else if (k === 'tfd') info.tfds.push(v);
        else if (k === 'inotify wd') info.inotify.push(line);
        else info.extra.set(k, v);
      }
    } catch {
      /* closed meanwhile */
    }
    out.push(info);
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** The inode of a pipe link (pipe:[123]), or null. */
export function pipeIno(link: string): bigint | null {
  const m = /^pipe:\[(\d+)\]$/.exec(link);
  return m ? BigInt(m[1]!) : null;
}

/** The inode of a socket link (socket:[123]), or null. */
export function socketIno(link: string): bigint | null {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? BigInt(m[1]!) : null;
}

/** Whether process pid is in crimg's network namespace (sock_diag answers for that one only). */
export function sameNetNs(pid: number): boolean {
  try {
    return fs.readlinkSync(procPath(pid, 'ns/net')) === fs.readlinkSync('/proc/self/ns/net');
  } catch {
    return false;
  }
}

/** "process 12" or "processes 12, 13, ..." (at most five listed), for reasons that name the holders of a file. */
export function processesText(pids: number[]): string {
  return pids.length === 1 ? `process ${pids[0]}` : `processes ${pids.slice(0, 5).join(', ')}${pids.length > 5 ? ', ...' : ''}`;
}

/** Linux dev_t split (new_decode_dev). */
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}

/** The file type bits of a mode (S_IFREG, S_IFDIR ... of consts.ts). */
export const fileType = (mode: bigint): number => Number(mode) & S_IFMT;

// ------------------------------------------------------------------ pagemap

export const PM_PRESENT = 1n << 63n;
export const PM_SWAPPED = 1n << 62n;
export const PM_FILE = 1n << 61n;
