/**
 * The CRIU mapping of each kind of saved state crimg keeps in an optional record: one module per kind
 * (src/kinds/<dir>/criu.ts) implements CriuKindMap, and CRIU_KINDS below is the one table toCriuImages and
 * fromCriuImages loop over. A kind's state belongs to an owner:
 *
 *   task     the leader's task_core_entry (`tc` of core-PID.img)
 *   thread   its core_entry: thread_info and thread_core (core-TID.img)
 *   fd       entries of a dump-wide image keyed by pid and fd (filelocks.img); CRIU restores them per task, and
 *            the entries may name fds crimg does not import, so import reads them once per task, in file order
 *
 * Export puts a recorded value (get() not undefined) into the messages being built for its owner; import reads it
 * back and sets it on the owner (nothing set: not recorded). Kinds not in the table are not mapped: CRIU_UNMAPPED
 * lists them (docs/CRIU.md says why).
 */
import type { ImageEntry, MagicName } from './img.js';
import type { Msg } from './pb.js';
import type { MessageName } from './proto.js';
import type { NocrReason, OpenFile, Task, Thread } from '../model.js';
import { criuMap as sigacts } from '../kinds/sigacts/criu.js';
import { criuMap as itimers } from '../kinds/itimers/criu.js';
import { criuMap as posixTimers } from '../kinds/posix-timers/criu.js';
import { criuMap as futex } from '../kinds/futex/criu.js';
import { criuMap as sigaltstack } from '../kinds/sigaltstack/criu.js';
import { criuMap as flocks } from '../kinds/flocks/criu.js';

export type CriuOwner = 'task' | 'thread' | 'fd';

/** A dump-wide image (one file for all tasks) that a kind's entries go to. */
export interface CriuDumpImage {
  file: string;
  magic: MagicName;
  entry: MessageName;
}

/** Export: collects the entries of the dump-wide images over all tasks; they are written after the tasks. */
export interface CriuDumpOut {
  add(image: CriuDumpImage, entry: Msg): void;
}
/** Import: the entries of the dump-wide images the kinds name, read before the tasks (no file: no entries). */
export interface CriuDumpIn {
  entries(image: CriuDumpImage): readonly ImageEntry[];
}

/** Export of a task kind: the task and its leader's task_core_entry being built. */
export interface CriuTaskOut {
  task: Task;
  tc: Msg;
}
/** Export of a thread kind: the thread, its thread_info_x86 and thread_core_entry being built. */
export interface CriuThreadOut {
  thread: Thread;
  info: Msg;
  core: Msg;
}
/** Export of an fd kind: the open file of task `pid` (one CRIU keeps as a regular file) and the dump-wide images. */
export interface CriuFdOut {
  pid: number;
  file: OpenFile;
  dump: CriuDumpOut;
}

/** Import of a task kind: the leader's task_core_entry. */
export interface CriuTaskIn {
  pid: number;
  tc: Msg;
}
/** Import of a thread kind: its thread_info_x86 and thread_core_entry (older images may have none). */
export interface CriuThreadIn {
  tid: number;
  info: Msg;
  core: Msg | undefined;
}
/** Import of an fd kind, once per task: its imported files, the dump-wide images, and the task's reasons (an entry
 *  crimg cannot take becomes one). */
export interface CriuFdsIn {
  pid: number;
  files: readonly OpenFile[];
  dump: CriuDumpIn;
  nocr: NocrReason[];
}

/** Per owner: the model object the value sits on, the export and import inputs, and what import gives back. */
export interface CriuOwners<V> {
  task: { model: Task; out: CriuTaskOut; in: CriuTaskIn; got: V | undefined };
  thread: { model: Thread; out: CriuThreadOut; in: CriuThreadIn; got: V | undefined };
  /** fd kinds give the values by the file they are on. */
  fd: { model: OpenFile; out: CriuFdOut; in: CriuFdsIn; got: ReadonlyMap<OpenFile, V> };
}

/** The CRIU mapping of one kind of saved state, of model type V, owned by a task, a thread or an fd. */
export interface CriuKindMap<V, O extends CriuOwner> {
  /** The schema record the kind is saved in. */
  /** The name of the kind's record in the schema (RECORDS; test/criu.test.ts checks it). */
  readonly record: string;
  readonly owner: O;
  /** Dump-wide images the kind's entries are in (read by import, written by export when they have entries). */
  readonly images?: readonly CriuDumpImage[];
  /** The value on its owner; undefined: not recorded. */
  get(owner: CriuOwners<V>[O]['model']): V | undefined;
  set(owner: CriuOwners<V>[O]['model'], value: V): void;
  /** Export: put a recorded value into the CRIU messages being built. */
  toCriu(value: V, out: CriuOwners<V>[O]['out']): void;
  /** Import: the value the CRIU messages hold (undefined, or no entry for an fd: not recorded). */
  fromCriu(src: CriuOwners<V>[O]['in']): CriuOwners<V>[O]['got'];
}

export type AnyCriuKindMap = CriuKindMap<unknown, 'task'> | CriuKindMap<unknown, 'thread'> | CriuKindMap<unknown, 'fd'>;

/** Every mapped kind, in the order their values are set on the model (the order of the optional records). */
export const CRIU_KINDS: readonly AnyCriuKindMap[] = [sigacts, itimers, posixTimers, futex, sigaltstack, flocks];

/** Kinds with a record but no CRIU mapping yet: export leaves their fds out, import turns CRIU's into reasons. */
export const CRIU_UNMAPPED: readonly string[] = ['ANON_FD', 'PIPE', 'UNIX_PAIR', 'INOTIFY', 'TCP_LISTEN', 'PROC_ATTRS'];

/** The mapped kinds of one owner, in table order. */
export function criuKindsOf<O extends CriuOwner>(owner: O): CriuKindMap<unknown, O>[] {
  return CRIU_KINDS.filter((m): m is CriuKindMap<unknown, O> & AnyCriuKindMap => m.owner === owner);
}

/** The dump-wide images of all mapped kinds (each once), in table order. */
export function criuDumpImages(): CriuDumpImage[] {
  const out: CriuDumpImage[] = [];
  for (const m of CRIU_KINDS) for (const i of m.images ?? []) if (!out.some((o) => o.file === i.file)) out.push(i);
  return out;
}
