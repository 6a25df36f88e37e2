/**
 * fast-check arbitraries of the optional kinds of state: one per kind of the registry (src/kinds/index.ts), keyed by
 * the kind's key, generating only values the kind's decode and checkTask accept (the rules of each format.ts: order,
 * ranges, which file kind, a pipe's bytes on its lowest fd, both sockets of a pair, an epoll's targets...). The
 * property tests (test/props.test.ts) add every kind to the tasks they generate through `withKinds`, which loops over
 * the registry: a kind without an arbitrary here fails them, as does test/kinds/registry.test.ts.
 */
import { fc } from '@fast-check/vitest';
import { FdKind, type OpenFile, type Task, type Thread } from '../../src/index.js';
import { KINDS_OF } from '../../src/kinds/index.js';
import { type AnyKind, setValue } from '../../src/kinds/kind.js';
import { ANON_KIND, type AnonFd } from '../../src/kinds/anon-fd/format.js';
import { type FileLock, LOCK_EOF } from '../../src/kinds/flocks/format.js';
import type { InotifyWatch } from '../../src/kinds/inotify/format.js';
import type { Itimer } from '../../src/kinds/itimers/format.js';
import type { PipeEnd } from '../../src/kinds/pipe/format.js';
import { POSIX_TIMER_CLOCKS, type PosixTimer, SIGEV } from '../../src/kinds/posix-timers/format.js';
import type { SigAction } from '../../src/kinds/sigacts/format.js';
import type { TcpListen } from '../../src/kinds/tcp-listen/format.js';
import type { UnixPairEnd } from '../../src/kinds/unix-pair/format.js';

const U64_MAX = 0xffffffffffffffffn;
const I64_MAX = 0x7fffffffffffffffn;
const I32_MAX = 0x7fffffff;
const u64 = fc.bigInt({ min: 0n, max: U64_MAX });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const str = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength });
const bytes = (minLength: number, maxLength: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength, maxLength });
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
/** Distinct integers in [min, max], ascending. */
const ascending = (min: number, max: number, maxLength: number): fc.Arbitrary<number[]> =>
  fc.uniqueArray(fc.integer({ min, max }), { maxLength }).map((a) => [...a].sort((x, y) => x - y));

/** A task kind: its value, given the tids of the task's threads. */
export interface TaskKindArb {
  owner: 'task';
  value(tids: readonly number[]): fc.Arbitrary<unknown>;
}
/** A thread kind: its value. */
export interface ThreadKindArb {
  owner: 'thread';
  value(): fc.Arbitrary<unknown>;
}
/** An fd kind. */
export interface FdKindArb {
  owner: 'fd';
  /** Files that carry the kind, valid together (the ends of a pipe, both sockets of a pair, an epoll and what it
   *  watches), with fds from fd0 on (fewer than FD_SPAN of them). */
  files(fd0: number): fc.Arbitrary<OpenFile[]>;
  /** A value that needs no other fd, for one fd of kind OTHER that carries several kinds at once (none: the kind
   *  needs other fds, or another kind of file). */
  alone?: fc.Arbitrary<unknown>;
}
export type KindArb = TaskKindArb | ThreadKindArb | FdKindArb;

/** Fds of the files the fd kinds add: KIND_FD_BASE + FD_SPAN * (index among the fd kinds) on, then one fd
 *  carrying several kinds; the other files of a generated task keep their fds out of [KIND_FD_BASE, KIND_FD_END). */
export const FD_SPAN = 16;
export const KIND_FD_BASE = 1 << 20;
export const KIND_FD_END = KIND_FD_BASE + FD_SPAN * (KINDS_OF.fd.length + 1);

/** A file with the given fd, file kind and kind values; its other fields arbitrary. */
const fileOf = (fd: number, kind: number, values: Partial<OpenFile>): fc.Arbitrary<OpenFile> =>
  fc
    .record({ path: str(24), flags: u32, pos: u64, mode: u32, cloexec: fc.boolean(), devMajor: u32, devMinor: u32, inode: u64, size: u64 })
    .map((f) => ({ ...f, fd, kind, ...values }));

// ------------------------------------------------------------------ task and thread kinds

const sigaction = (sig: number): fc.Arbitrary<SigAction> =>
  fc.record({ handler: fc.bigInt({ min: 1n, max: U64_MAX }), flags: u64, restorer: u64, mask: u64 }).map((a) => ({ sig, ...a }));

const itimer = (which: number): fc.Arbitrary<Itimer> =>
  fc
    .record({ intervalUs: u64, valueUs: u64 })
    .filter((x) => x.intervalUs !== 0n || x.valueUs !== 0n)
    .map((x) => ({ which, ...x }));

/** A POSIX timer; SIGEV_THREAD_ID only to a thread of the task (one with a tid a timer can name). */
const posixTimer = (id: number, tids: readonly number[]): fc.Arbitrary<PosixTimer> => {
  const named = tids.filter((t) => t > 0);
  const notify = fc.constantFrom(SIGEV.SIGNAL, SIGEV.NONE, ...(named.length ? [SIGEV.THREAD_ID] : []));
  return notify.chain((n) =>
    fc
      .record({
        clock: fc.constantFrom(...POSIX_TIMER_CLOCKS),
        notifyTid: n === SIGEV.THREAD_ID ? fc.constantFrom(...named) : fc.constant(0),
        signo: fc.integer({ min: n === SIGEV.NONE ? 0 : 1, max: 64 }),
        sigevValue: u64,
        intervalNs: u64,
        valueNs: u64,
      })
      .map((x) => ({ id, notify: n, ...x })),
  );
};

// ------------------------------------------------------------------ fd kinds

/** A lock: flock over the whole file, or a POSIX or OFD lock over start..end (end up to 2^63-1, or EOF). */
const fileLock: fc.Arbitrary<FileLock> = fc.oneof(
  fc.boolean().map((write) => ({ kind: 1, write, start: 0n, end: LOCK_EOF })),
  fc
    .record({
      kind: fc.constantFrom(2, 3),
      write: fc.boolean(),
      a: fc.bigInt({ min: 0n, max: I64_MAX }),
      b: fc.option(fc.bigInt({ min: 0n, max: I64_MAX }), { nil: LOCK_EOF }),
    })
    .map(({ kind, write, a, b }) => ({ kind, write, start: b !== LOCK_EOF && b < a ? b : a, end: b !== LOCK_EOF && b < a ? a : b })),
);

const eventfd = fc
  .tuple(fc.bigInt({ min: 0n, max: U64_MAX - 1n }), fc.constantFrom(0n, 1n))
  .map((v): AnonFd => ({ kind: ANON_KIND.EVENTFD, values: v }));
const timerfd = fc
  .tuple(fc.constantFrom(0n, 1n, 7n, 8n, 9n), fc.bigInt({ min: 0n, max: 3n }), u64, u64, u64)
  .map((v): AnonFd => ({ kind: ANON_KIND.TIMERFD, values: v }));
const signalfd = u64.map((m): AnonFd => ({ kind: ANON_KIND.SIGNALFD, values: [m] }));
const simpleAnon = fc.oneof(eventfd, timerfd, signalfd);

/** eventfds, timerfds, signalfds and maybe an epoll watching some of them (with events and data). */
function anonFiles(fd0: number): fc.Arbitrary<OpenFile[]> {
  return fc.tuple(fc.array(simpleAnon, { minLength: 1, maxLength: 3 }), fc.boolean()).chain(([simple, withEpoll]) => {
    const fds = simple.map((_, i) => fd0 + i);
    const epoll = withEpoll
      ? fc
          .subarray(fds)
          .chain((w) => fc.tuple(...w.map((fd) => fc.tuple(fc.constant(BigInt(fd)), fc.bigInt({ min: 0n, max: 0xffffffffn }), u64))))
          .map((w): AnonFd[] => [{ kind: ANON_KIND.EPOLL, values: w.flat() }])
      : fc.constant([] as AnonFd[]);
    return epoll.chain((e) => fc.tuple(...[...simple, ...e].map((anon, i) => fileOf(fd0 + i, FdKind.OTHER, { anon }))));
  });
}

const pipeSize = fc.integer({ min: 12, max: 31 }).map((k) => 2 ** k);

/** The fds of one pipe: each end on some fds, the bytes buffered on the lowest (the first in the image). */
function pipeFiles(fd0: number): fc.Arbitrary<OpenFile[]> {
  return fc
    .record({
      ino: fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }),
      size: pipeSize,
      ends: fc.array(fc.boolean(), { minLength: 1, maxLength: 3 }),
      data: opt(bytes(1, 64)),
    })
    .chain(({ ino, size, ends, data }) =>
      fc.tuple(
        ...ends.map((write, i) => {
          const pipe: PipeEnd = { ino, write, size };
          if (i === 0 && data) pipe.data = data;
          return fileOf(fd0 + i, FdKind.OTHER, { pipe });
        }),
      ),
    );
}
/** A pipe whose only fd this is (its inode apart from those of pipeFiles). */
const alonePipe: fc.Arbitrary<PipeEnd> = fc
  .record({ ino: fc.bigInt({ min: 1n << 40n, max: (1n << 41n) - 1n }), write: fc.boolean(), size: pipeSize, data: opt(bytes(1, 64)) })
  .map(({ data, ...p }) => (data ? { ...p, data } : p));

/** Both sockets of a pair, each on one or more fds in some order, the bytes queued to each (stream pairs) on its
 *  first fd. */
function pairFiles(fd0: number): fc.Arbitrary<OpenFile[]> {
  return fc
    .record({
      pair: u64,
      type: fc.constantFrom(1, 2, 5),
      more: fc.array(fc.boolean(), { maxLength: 2 }),
      data: fc.tuple(opt(bytes(1, 64)), opt(bytes(1, 64))),
    })
    .chain(({ pair, type, more, data }) =>
      fc.shuffledSubarray([false, true, ...more], { minLength: more.length + 2 }).chain((order) => {
        const seen = new Set<boolean>();
        return fc.tuple(
          ...order.map((second, i) => {
            const u: UnixPairEnd = { pair, second, type };
            const d = data[second ? 1 : 0];
            if (type === 1 && d && !seen.has(second)) u.data = d;
            seen.add(second);
            return fileOf(fd0 + i, FdKind.OTHER, { unixPair: u });
          }),
        );
      }),
    );
}

/** Watches by ascending wd, on absolute paths. */
const watches: fc.Arbitrary<InotifyWatch[]> = ascending(1, I32_MAX, 4).chain((wds) =>
  fc.tuple(...wds.map((wd) => fc.record({ mask: u32, path: str(20).map((s) => `/${s}`) }).map((w) => ({ wd, ...w })))),
);

const listener: fc.Arbitrary<TcpListen> = fc
  .record({
    inet: fc.oneof(
      bytes(4, 4).map((addr) => ({ family: 2, addr })),
      bytes(16, 16).map((addr) => ({ family: 10, addr })),
    ),
    port: fc.integer({ min: 1, max: 65535 }),
    backlog: u32,
    opts: fc.integer({ min: 0, max: 7 }),
  })
  .map(({ inet, ...l }) => ({ ...inet, ...l }));

/** Files of kind OTHER, each with a value from `a` under `key`. */
const othersWith = (key: string, a: fc.Arbitrary<unknown>, fd0: number): fc.Arbitrary<OpenFile[]> =>
  fc.array(a, { minLength: 1, maxLength: 2 }).chain((vs) => fc.tuple(...vs.map((v, i) => fileOf(fd0 + i, FdKind.OTHER, { [key]: v }))));

// ------------------------------------------------------------------ the map

export const KIND_ARBS: Readonly<Record<string, KindArb>> = {
  sigactions: { owner: 'task', value: () => ascending(1, 64, 6).chain((sigs) => fc.tuple(...sigs.map(sigaction))) },
  itimers: { owner: 'task', value: () => fc.subarray([0, 1, 2]).chain((w) => fc.tuple(...w.map(itimer))) },
  posixTimers: {
    owner: 'task',
    value: (tids) => ascending(0, I32_MAX, 4).chain((ids) => fc.tuple(...ids.map((id) => posixTimer(id, tids)))),
  },
  procAttrs: {
    owner: 'task',
    value: () =>
      fc.record({
        umask: fc.integer({ min: 0, max: 0o777 }),
        oomScoreAdj: fc.integer({ min: -1000, max: 1000 }),
        dumpable: fc.boolean(),
        thpDisable: fc.boolean(),
        childSubreaper: fc.boolean(),
        timerSlackNs: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }),
      }),
  },
  futex: { owner: 'thread', value: () => fc.record({ clearChildTid: u64, robustHead: u64, robustLen: u64 }) },
  sigaltstack: { owner: 'thread', value: () => fc.record({ sp: u64, size: u64, flags: u32 }) },
  locks: {
    owner: 'fd',
    files: (fd0) =>
      fc
        .array(fc.tuple(fc.constantFrom(FdKind.REGULAR, FdKind.DIRECTORY), fc.array(fileLock, { minLength: 1, maxLength: 4 })), {
          minLength: 1,
          maxLength: 2,
        })
        .chain((fs) => fc.tuple(...fs.map(([kind, locks], i) => fileOf(fd0 + i, kind, { locks })))),
  },
  anon: { owner: 'fd', files: anonFiles, alone: simpleAnon },
  pipe: { owner: 'fd', files: pipeFiles, alone: alonePipe },
  inotify: { owner: 'fd', files: (fd0) => othersWith('inotify', watches, fd0), alone: watches },
  tcpListen: { owner: 'fd', files: (fd0) => othersWith('tcpListen', listener, fd0), alone: listener },
  unixPair: { owner: 'fd', files: pairFiles },
};

/** The arbitrary of a kind (an error when it has none, or one for another owner). */
export function arbOf(k: AnyKind): KindArb {
  const a = KIND_ARBS[k.key];
  if (!a) throw new Error(`kind ${k.record.name} (${k.key}) has no arbitrary in test/helpers/kinds-arb.ts`);
  if (a.owner !== k.owner) throw new Error(`the arbitrary of kind ${k.key} is for a ${a.owner}, the kind for a ${k.owner}`);
  return a;
}
const taskArb = (k: AnyKind): TaskKindArb => arbOf(k) as TaskKindArb;
const threadArb = (k: AnyKind): ThreadKindArb => arbOf(k) as ThreadKindArb;
const fdArb = (k: AnyKind): FdKindArb => arbOf(k) as FdKindArb;

/** First fd of the files an fd kind adds. */
const fdBase = (k: AnyKind): number => KIND_FD_BASE + FD_SPAN * KINDS_OF.fd.indexOf(k);

/** A copy of the task with values of kind `k`: on the task, on one of its threads (it must have one), or on files
 *  added to it. */
export function withKind(k: AnyKind, t: Task): fc.Arbitrary<Task> {
  const tids = t.threads.map((th) => th.tid);
  if (k.owner === 'task')
    return taskArb(k)
      .value(tids)
      .map((v) => {
        const x = { ...t };
        setValue(k, x, v);
        return x;
      });
  if (k.owner === 'thread') {
    return fc.tuple(fc.integer({ min: 0, max: t.threads.length - 1 }), threadArb(k).value()).map(([i, v]) => {
      const threads = t.threads.map((th) => ({ ...th }));
      setValue(k, threads[i]!, v);
      return { ...t, threads };
    });
  }
  return fdArb(k)
    .files(fdBase(k))
    .map((files) => ({ ...t, files: [...t.files, ...files] }));
}

/** One fd of kind OTHER carrying the values of several fd kinds at once (those with `alone`). */
function stackedFile(fd: number): fc.Arbitrary<OpenFile> {
  const ks = KINDS_OF.fd.filter((k) => fdArb(k).alone);
  return fc
    .tuple(...ks.map((k) => opt(fdArb(k).alone!)))
    .filter((vs) => vs.filter((v) => v !== undefined).length >= 2)
    .chain((vs) => fileOf(fd, FdKind.OTHER, Object.fromEntries(ks.flatMap((k, i) => (vs[i] === undefined ? [] : [[k.key, vs[i]]])))));
}

/**
 * A copy of the task with values of every kind of the registry, each maybe: on the task, on each thread, on files
 * added to it (fds from KIND_FD_BASE on), and maybe one more file carrying several fd kinds at once.
 */
export function withKinds(t: Task): fc.Arbitrary<Task> {
  const tids = t.threads.map((th) => th.tid);
  return fc
    .tuple(
      fc.tuple(...KINDS_OF.task.map((k) => opt(taskArb(k).value(tids)))),
      fc.tuple(...t.threads.map(() => fc.tuple(...KINDS_OF.thread.map((k) => opt(threadArb(k).value()))))),
      fc.tuple(...KINDS_OF.fd.map((k) => opt(fdArb(k).files(fdBase(k))))),
      opt(stackedFile(KIND_FD_END - FD_SPAN)),
    )
    .map(([tv, thv, fv, stacked]) => {
      const x: Task = { ...t };
      KINDS_OF.task.forEach((k, i) => {
        if (tv[i] !== undefined) setValue(k, x, tv[i]);
      });
      x.threads = t.threads.map((th, j): Thread => {
        const y = { ...th };
        KINDS_OF.thread.forEach((k, i) => {
          if (thv[j]![i] !== undefined) setValue(k, y, thv[j]![i]);
        });
        return y;
      });
      x.files = [...t.files, ...fv.flatMap((f) => f ?? []), ...(stacked ? [stacked] : [])];
      return x;
    });
}
