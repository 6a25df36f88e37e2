/**
 * One inspection pass over the tasks of a tree: every reason a task cannot be checkpointed and restarted
 * faithfully (what `crimg check` reports, and dump records as NOCR), and, in the same look at each fd, the state of
 * the kinds crimg saves (src/kinds/live.ts): dump puts it into the model (collect.ts) without examining the fds a
 * second time.
 *
 * Per task: its process-level reasons (reasons.ts), those of its task kinds (POSIX timers /proc shows), then its
 * fds: the kinds whose state spans fds look at the whole table first; each fd is then claimed by the first object
 * kind that knows it (inotify, anon-fd, tcp-listen, unix-pair, pipe) or gets the generic reasons, and the
 * attribute kinds (file locks) look at it after that; then its mappings, children and namespaces.
 */
import { setValue } from '../kinds/kind.js';
import * as fs from 'node:fs';
import type { NocrReason, OpenFile } from '../model.js';
import { type FdInfo, type MapEntry, allPids, exists, isSharedAnonPath, procPath, readFds, readMaps, tryReadlink } from '../os/proc.js';
import {
  type FdInspectCtx,
  LIVE_FD_KINDS,
  LIVE_TASK_KINDS,
  type LiveFdKind,
  type NocrCode,
  type Reason,
  STDIO_DUMP_HINT,
} from '../kinds/live.js';
import { childReasons, fdReasons, mapReasons, nsReasons, processReasons } from './reasons.js';

export interface InspectOptions {
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
  /** Read the state of the saved kinds too (a dump of the frozen tree), not only the reasons (`crimg check`). A
   *  failure to read it is then thrown, where check reports a task that fails to be examined as VANISHED. */
  wantState?: boolean;
}

/** The state a kind read of one fd, to put into the fd's OpenFile. */
export interface SavedFdState {
  kind: LiveFdKind;
  state: unknown;
}

export interface Inspection {
  /** Every reason, task by task (a task's in the order: process, task kinds, fds, mappings, children, namespaces). */
  reasons: NocrReason[];
  /** The saved state of each task's fds: pid -> fd -> the kinds' states (empty without wantState). */
  fdStates: Map<number, Map<number, SavedFdState[]>>;
}

/** Put the states the kinds read of an fd into its OpenFile. */
export function applyFdStates(file: OpenFile, states: readonly SavedFdState[] | undefined): void {
  for (const s of states ?? []) setValue(s.kind.format, file, s.state);
}

/** The processes among `pids` holding each pipe and socket (by fd link: pipe:[N], socket:[N]). */
function pipeAndSocketHolders(pids: number[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const p of pids) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(procPath(p, 'fd'));
    } catch {
      continue;
    }
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

/** Who else holds the pipes, sockets and shared anonymous memory of the tree (each index built on first use), and
 *  the values the kinds make once per pass. */
export class Holders {
  private links: Map<string, number[]> | null = null;
  private shmem: Map<string, number[]> | null = null;
  private inTree: Map<string, number[]> | null = null;
  private readonly made = new Map<string, unknown>();
  constructor(
    readonly tree: Set<number>,
    readonly quick = false,
  ) {}

  /** Processes outside the tree that hold `link` (pipe:[N], socket:[N]). */
  outside(link: string): number[] {
    if (this.quick) return [];
    this.links ??= pipeAndSocketHolders(allPids().filter((p) => !this.tree.has(p)));
    return this.links.get(link) ?? [];
  }

  /** Processes of the tree that hold `link` (pipe:[N], socket:[N]). */
  inTreeOf(link: string): number[] {
    this.inTree ??= pipeAndSocketHolders([...this.tree]);
    return this.inTree.get(link) ?? [];
  }

  /** Processes outside the tree that map the shared anonymous memory `key` (major:minor:inode). */
  shmemOutside(key: string): number[] {
    if (this.quick) return [];
    this.shmem ??= this.sharedAnonHolders();
    return this.shmem.get(key) ?? [];
  }

  private sharedAnonHolders(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const p of allPids()) {
      if (this.tree.has(p)) continue;
      let maps: MapEntry[] = [];
      try {
        maps = readMaps(p, false);
      } catch {
        continue;
      }
      for (const m of maps) {
        if (!m.shared || !isSharedAnonPath(m.path)) continue;
        const k = `${m.devMajor}:${m.devMinor}:${m.inode}`;
        const a = out.get(k) ?? [];
        if (!a.includes(p)) a.push(p);
        out.set(k, a);
      }
    }
    return out;
  }

  /** A value made once per pass. */
  once<T>(key: string, make: () => T): T {
    if (!this.made.has(key)) this.made.set(key, make());
    return this.made.get(key) as T;
  }
}

/** Reasons for fds 0-2 that only mean the task shares crimg's terminal or a pipe of its parent: a note (STDIO). */
const STDIO_CODES: ReadonlySet<NocrCode> = new Set(['PIPE', 'SOCKET', 'FIFO', 'TTY']);

/** Adds a reason about fd `fd`: standard input, output and error on a terminal or another process's pipe or
 *  socket are a note (STDIO). */
function fdAdder(fd: number, add: (code: NocrCode, text: string) => void): (r: Reason) => void {
  return (r) => {
    if (fd <= 2 && STDIO_CODES.has(r.code)) add('STDIO', `${r.text}${STDIO_DUMP_HINT}`);
    else add(r.code, r.text);
  };
}

/** Examine each fd of task pid once: the kinds' reasons and states, and the generic reasons of the fds no kind
 *  claims. Returns the states by fd. */
function inspectFds(
  pid: number,
  fds: FdInfo[],
  holders: Holders,
  wantState: boolean,
  add: (code: NocrCode, text: string) => void,
): Map<number, SavedFdState[]> {
  const ctx: FdInspectCtx = {
    pid,
    fds,
    wantState,
    holdersOutside: (link) => holders.outside(link),
    holdersInTree: (link) => holders.inTreeOf(link).filter((p) => p !== pid),
    once: (key, make) => holders.once(key, make),
  };
  const views = LIVE_FD_KINDS.map((kind) => ({ kind, task: kind.task?.(ctx) }));
  const objects = views.filter((v) => !v.kind.attribute);
  const attributes = views.filter((v) => v.kind.attribute);
  const out = new Map<number, SavedFdState[]>();
  for (const f of fds) {
    const reason = fdAdder(f.fd, add);
    const states: SavedFdState[] = [];
    const take = (kind: LiveFdKind, got: NonNullable<ReturnType<LiveFdKind['inspect']>>): void => {
      if (got.reason) reason(got.reason);
      if (got.state !== undefined) states.push({ kind, state: got.state });
    };
    let claimed = false;
    for (const v of objects) {
      const got = v.kind.inspect(f, ctx, v.task);
      if (!got) continue;
      take(v.kind, got);
      claimed = true;
      break;
    }
    if (!claimed) fdReasons(f, holders, reason);
    for (const v of attributes) {
      const got = v.kind.inspect(f, ctx, v.task);
      if (got) take(v.kind, got);
    }
    if (states.length) out.set(f.fd, states);
  }
  return out;
}

/** The reasons (and with wantState the saved state of the fds) of the tree rooted at the given processes. */
export function inspectProcesses(pids: number[], opts: InspectOptions = {}): Inspection {
  const tree = new Set(pids);
  const holders = new Holders(tree, !!opts.quick);
  const reasons: NocrReason[] = [];
  const fdStates = new Map<number, Map<number, SavedFdState[]>>();
  for (const pid of pids) {
    const add = (code: NocrCode, text: string): void => {
      reasons.push({ code, pid, text });
    };
    try {
      if (!processReasons(pid, opts, add)) continue;
      for (const k of LIVE_TASK_KINDS) for (const r of k.reasons?.(pid) ?? []) add(r.code, r.text);
      const fds = opts.fds?.get(pid) ?? readFds(pid);
      fdStates.set(pid, inspectFds(pid, fds, holders, !!opts.wantState, add));
      mapReasons(opts.maps?.get(pid) ?? readMaps(pid, true), holders, add);
      childReasons(pid, tree, !!opts.tree, add);
      if (pid === pids[0] && !opts.quick) nsReasons(pid, tree, add);
    } catch (e) {
      if (opts.wantState && exists(pid)) throw e;
      add('VANISHED', `process ${pid} exited while crimg examined it`);
    }
  }
  return { reasons, fdStates };
}
