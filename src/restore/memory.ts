/**
 * The address space of the new task: the park (injection code and scratch data, where the stub's vdso waits), the
 * stub's own mappings removed, the image's VMAs mapped with their pages, flags and advice, the vdso moved to its
 * place, and the mm fields (code, data, brk, stack, args, env, auxv, exe). Steps 1-4 of restore.ts.
 */
import { statSync } from 'node:fs';
import { type Task, VmaFlags, type Vma } from '../model.js';
import type { Image } from '../reader.js';
import { processVmRead, ptraceGetRseq } from '../os/libc.js';
import { readMaps } from '../os/proc.js';
import { isFileVma, isSpecialVma } from './check.js';
import {
  PAGE,
  PARK_CODE,
  PARK_DATA,
  type RestoreCtx,
  type RestoreOptions,
  RESULTS,
  BATCH_CODE,
  Step,
  type StepFn,
  type Stub,
  batchFor,
  hex,
  planFds,
  str,
} from './ctx.js';
import { type BatchCall, Injector, NR, SYSCALL_INT3 } from './inject.js';
import { PageWriter } from './pages.js';
import { CrimgError } from '../errors.js';
import {
  AT_FDCWD,
  O_CLOEXEC,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  O_RDWR,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  PR_SET_MM,
  PR_SET_MM_MAP,
  RSEQ_FLAG_UNREGISTER,
} from '../os/consts.js';

/** VMA flags restored by madvise: flag, advice, whether it must succeed, name. */
const MADVICE: readonly [number, number, boolean, string][] = [
  [VmaFlags.DONTDUMP, 16, true, 'MADV_DONTDUMP'],
  [VmaFlags.DONTFORK, 10, true, 'MADV_DONTFORK'],
  [VmaFlags.WIPEONFORK, 18, true, 'MADV_WIPEONFORK'],
  [VmaFlags.HUGEPAGE, 14, false, 'MADV_HUGEPAGE'],
  [VmaFlags.NOHUGEPAGE, 15, false, 'MADV_NOHUGEPAGE'],
  [VmaFlags.MERGEABLE, 12, false, 'MADV_MERGEABLE'],
  [VmaFlags.SEQ_READ, 2, false, 'MADV_SEQUENTIAL'],
  [VmaFlags.RAND_READ, 1, false, 'MADV_RANDOM'],
];

/** Finds `size` bytes free of all the given ranges, 1 MiB aligned, from 4 GiB up. */
export function findHole(ranges: [bigint, bigint][], size: bigint): bigint {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const align = 1n << 20n;
  let at = 1n << 32n;
  for (const [s, e] of sorted) {
    if (e <= at) continue;
    if (s >= at + size + align) break; // keep a gap below the next range
    at = (e + align) & ~(align - 1n);
  }
  if (at + size > 0x7ff000000000n) throw new Error('no free address range for the restore park area');
  return at;
}

const isSpecialMap = (m: { path: string }): boolean => m.path === '[vvar]' || m.path === '[vvar_vclock]' || m.path === '[vdso]';

/**
 * Step 1, the park: an area free in both the stub and the image takes the injection code and scratch data (and the
 * stub's vdso, next). The stub gets a session of its own first: no terminal signals for crimg's job (^C, SIGWINCH),
 * no controlling terminal, and no SIGHUP when crimg exits and leaves it (stopped, with --stopped) in an orphaned
 * process group. Returns the context every later step works on.
 */
export function parkStub(image: Image, task: Task, stub: Stub, tids: number[], step: StepFn, opts: RestoreOptions): RestoreCtx {
  const pid = stub.pid;
  const stubMaps = step('read stub maps', '', () => readMaps(pid, false));
  const specials = stubMaps.filter(isSpecialMap);
  const parkSize = PARK_CODE + PARK_DATA + specials.reduce((n, m) => n + (m.end - m.start), 0n);
  const park = step('choose park', '', () =>
    findHole(
      [...stubMaps.map((m) => [m.start, m.end] as [bigint, bigint]), ...task.mm!.vmas.map((v) => [v.start, v.end] as [bigint, bigint])],
      parkSize,
    ),
  );
  const data = park + PARK_CODE;
  const inj = step('bootstrap', '', () => new Injector(pid));
  if (!opts.treeChild) step('setsid', '', () => inj.call(NR.setsid, []));
  else if (task.pgid === task.pid) step('setpgid', '', () => inj.call(NR.setpgid, [0, 0])); // led its own group
  step('map park', hex(park), () => {
    inj.call(NR.mmap, [park, parkSize, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0]);
    const code = new Uint8Array(16).fill(0xcc);
    new DataView(code.buffer).setBigUint64(0, SYSCALL_INT3, true);
    inj.write(park, code);
    inj.code = park;
  });
  const leader = task.threads.find((t) => t.tid === task.pid) ?? task.threads[0]!;
  return {
    image,
    task,
    opts,
    stub,
    pid,
    tids,
    step,
    inj,
    park,
    parkSize,
    data,
    batch: batchFor({ step, opts, park, data }, inj),
    leader,
    others: task.threads.filter((t) => t !== leader),
    injs: new Map([[leader, inj]]),
    stubMaps,
    specials,
    parked: new Map(),
    fds: planFds(task, opts),
    pages: 0,
    userfaultfd: false,
  };
}

/** The stub's rseq area is about to be unmapped: unregistered first. */
export function unregisterStubRseq(ctx: RestoreCtx): void {
  const rseq = ptraceGetRseq(ctx.pid);
  if (rseq?.ptr) {
    ctx.step('unregister stub rseq', hex(rseq.ptr), () => ctx.inj.call(NR.rseq, [rseq.ptr, rseq.len, RSEQ_FLAG_UNREGISTER, rseq.sig]));
  }
}

/** The stub's [vvar], [vvar_vclock] and [vdso] wait in the park (they cannot be made again, only moved). */
export function parkVdso(ctx: RestoreCtx): void {
  let at = ctx.park + PARK_CODE + PARK_DATA;
  for (const m of ctx.specials) {
    ctx.step('park vdso', `${m.path} ${hex(m.start)}`, () =>
      ctx.inj.call(NR.mremap, [m.start, m.end - m.start, m.end - m.start, MREMAP_MAYMOVE | MREMAP_FIXED, at]),
    );
    ctx.parked.set(m.path, at);
    at += m.end - m.start;
  }
}

/** Step 2: every other mapping of the stub goes. */
export function unmapStub(ctx: RestoreCtx): void {
  ctx.batch(
    'unmap stub',
    ctx.stubMaps
      .filter((m) => !ctx.specials.includes(m) && m.path !== '[vsyscall]')
      .map((m) => ({ nr: NR.munmap, args: [m.start, m.end - m.start], at: `${hex(m.start)}-${hex(m.end)}` })),
  );
}

const vmaAt = (v: Vma): string => `vma ${hex(v.start)}-${hex(v.end)}${v.path ? ` ${v.path}` : ''}`;
const fileMode = (v: Vma): number => (v.flags & VmaFlags.SHARED && v.prot & PROT_WRITE ? O_RDWR : O_RDONLY);
const fileKey = (v: Vma): string => `${fileMode(v)}\0${v.path}`;

/**
 * Step 3, the image's memory: its mapped files opened, every VMA mapped at once (read-only ones that get pages mapped
 * writable, then protected), the stored pages written (pages.ts), then the advice and locks of each VMA.
 */
export async function mapMemory(ctx: RestoreCtx): Promise<void> {
  const writer = new PageWriter(ctx.image, ctx.opts.pageWriter);
  const fileFds = new Map<string, number>();
  try {
    const vmas = ctx.task.mm!.vmas.filter((v) => !isSpecialVma(v)).sort((a, b) => (a.start < b.start ? -1 : 1));
    ctx.step('userfaultfd', '', () => writer.begin(ctx.pid, (nr, args) => ctx.inj.call(nr, args)));
    for (const [k, fd] of openMappedFiles(ctx, vmas)) fileFds.set(k, fd);
    const storedRuns = (v: Vma): [number, number][] =>
      isFileVma(v) && v.flags & VmaFlags.SHARED ? [] : [...v.pages.runs(Number((v.end - v.start) / PAGE))];
    const withPages = new Set(vmas.filter((v) => storedRuns(v).length > 0));
    const needWrite = (v: Vma): boolean => withPages.has(v) && !(v.prot & PROT_WRITE);
    mapVmas(ctx, vmas, fileFds, needWrite);
    for (const v of vmas) {
      if (!withPages.has(v)) continue;
      const p = ctx.step('write pages', vmaAt(v), () => writer.writeVmaAsync(v));
      try {
        ctx.pages += await p;
      } catch (e) {
        throw e instanceof Step || e instanceof CrimgError ? e : new Step('write pages', vmaAt(v), e);
      }
    }
    ctx.batch(
      'protect',
      vmas.filter(needWrite).map((v) => ({ nr: NR.mprotect, args: [v.start, v.end - v.start, v.prot], at: vmaAt(v) })),
    );
    ctx.step('close userfaultfd', '', () => writer.end());
    ctx.userfaultfd = writer.copied > 0;
    adviseVmas(ctx, vmas);
  } finally {
    writer.close();
  }
  ctx.batch(
    'close mapped file',
    [...fileFds.values()].map((fd) => ({ nr: NR.close, args: [fd], at: `fd ${fd}` })),
  );
}

/** The mapped files, opened all at once (their paths side by side in the park) when their paths fit: key -> fd. */
function openMappedFiles(ctx: RestoreCtx, vmas: Vma[]): Map<string, number> {
  const fds = new Map<string, number>();
  const toOpen: { key: string; path: string; mode: number; at: string }[] = [];
  for (const v of vmas) {
    if (!isFileVma(v)) continue;
    const key = fileKey(v);
    if (!toOpen.some((o) => o.key === key)) toOpen.push({ key, path: v.path!, mode: fileMode(v), at: vmaAt(v) });
  }
  const paths = toOpen.map((o) => Buffer.from(`${o.path}\0`, 'utf8'));
  if (paths.reduce((n, b) => n + b.length, 0) <= Number(RESULTS)) {
    const calls: (BatchCall & { at: string; detail: string })[] = [];
    let off = 0;
    ctx.step('open mapped file', '', () => ctx.inj.write(ctx.data, Buffer.concat(paths)));
    toOpen.forEach((o, i) => {
      calls.push({ nr: NR.openat, args: [AT_FDCWD, ctx.data + BigInt(off), o.mode | O_CLOEXEC, 0], at: o.at, detail: o.path });
      off += paths[i]!.length;
    });
    ctx.batch('open mapped file', calls).forEach((fd, i) => fds.set(toOpen[i]!.key, Number(fd)));
  } else {
    for (const o of toOpen) {
      fds.set(
        o.key,
        ctx.step('open mapped file', o.at, () =>
          Number(ctx.inj.call(NR.openat, [AT_FDCWD, str(ctx, o.path), o.mode | O_CLOEXEC, 0], o.path)),
        ),
      );
    }
  }
  return fds;
}

/** Every VMA at its address, in one batch; each must land where asked. */
function mapVmas(ctx: RestoreCtx, vmas: Vma[], fileFds: Map<string, number>, needWrite: (v: Vma) => boolean): void {
  const maps = vmas.map((v) => {
    const file = isFileVma(v);
    let flags = (v.flags & VmaFlags.SHARED ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE;
    if (v.flags & VmaFlags.GROWSDOWN) flags |= MAP_GROWSDOWN;
    if (!file) flags |= MAP_ANONYMOUS;
    const fd = file ? fileFds.get(fileKey(v))! : -1;
    const prot = v.prot | (needWrite(v) ? PROT_WRITE : 0);
    return { nr: NR.mmap, args: [v.start, v.end - v.start, prot, flags, fd, file ? v.pgoff * PAGE : 0n], at: vmaAt(v), detail: '' };
  });
  ctx.batch('map', maps).forEach((got, i) => {
    const v = vmas[i]!;
    if (BigInt.asUintN(64, got) !== v.start)
      throw new Step('map', vmaAt(v), new Error(`mmap placed it at ${hex(BigInt.asUintN(64, got))}`));
  });
}

/** VM flags: advice that changes behaviour (dump, fork) must hold; advice that only tunes (THP, KSM, read-ahead) is
 *  best effort (a kernel without KSM refuses MADV_MERGEABLE); then mlock. */
function adviseVmas(ctx: RestoreCtx, vmas: Vma[]): void {
  const must: (BatchCall & { at: string; detail: string })[] = [];
  const tune: BatchCall[] = [];
  for (const v of vmas) {
    for (const [bit, advice, required, name] of MADVICE) {
      if (!(v.flags & bit)) continue;
      const c = { nr: NR.madvise, args: [v.start, v.end - v.start, advice], at: vmaAt(v), detail: name };
      if (required) must.push(c);
      else tune.push(c);
    }
  }
  ctx.batch('madvise', must);
  if (tune.length)
    ctx.step('madvise (tuning)', '', () =>
      ctx.inj.batchRaw(tune, ctx.park + BATCH_CODE, Number(PARK_CODE - BATCH_CODE), ctx.data + RESULTS),
    );
  ctx.batch(
    'mlock',
    vmas.filter((v) => v.flags & VmaFlags.LOCKED).map((v) => ({ nr: NR.mlock, args: [v.start, v.end - v.start], at: vmaAt(v) })),
  );
}

/** Step 4a: the vdso mappings from the park to the image's addresses (those the image lacks go). */
export function placeVdso(ctx: RestoreCtx): void {
  for (const m of ctx.specials) {
    const target = ctx.task.mm!.vmas.find((v) => v.path === m.path);
    const from = ctx.parked.get(m.path)!;
    if (!target) {
      ctx.step('drop vdso', m.path, () => ctx.inj.call(NR.munmap, [from, m.end - m.start]));
      continue;
    }
    ctx.step('place vdso', `${m.path} ${hex(target.start)}`, () => {
      ctx.inj.call(NR.mremap, [from, m.end - m.start, m.end - m.start, MREMAP_MAYMOVE | MREMAP_FIXED, target.start]);
      // fault in the vdso pages the task had touched (the vvar pages have no struct page to read)
      if (m.path === '[vdso]') {
        for (const [first, n] of target.pages.runs(Number((m.end - m.start) / PAGE))) {
          processVmRead(ctx.pid, new Uint8Array(n * 4096), target.start + BigInt(first) * PAGE);
        }
      }
    });
  }
}

/** Step 4b: PR_SET_MM_MAP sets the mm fields, the auxv and the exe link. */
export function setMmFields(ctx: RestoreCtx): void {
  const { task, inj, data } = ctx;
  const mm = task.mm!;
  ctx.step('mm fields', '', () => {
    // the kernel refuses a new exe while the old one is mapped: when the task runs the stub's own program (a
    // restored `sleep`), its exe is already the right one (-1: unchanged)
    let same = false;
    try {
      const a = statSync(`/proc/${ctx.pid}/exe`),
        b = statSync(task.exe);
      same = a.dev === b.dev && a.ino === b.ino;
    } catch {
      /* not the same */
    }
    const exeFd = same ? -1 : Number(inj.call(NR.openat, [AT_FDCWD, str(ctx, task.exe), O_RDONLY | O_CLOEXEC, 0], task.exe));
    const auxv = [...mm.auxv, 0n, 0n];
    const b = new Uint8Array(104 + auxv.length * 8);
    const dv = new DataView(b.buffer);
    const f = [
      mm.startCode,
      mm.endCode,
      mm.startData,
      mm.endData,
      mm.startBrk,
      mm.brk,
      mm.startStack,
      mm.argStart,
      mm.argEnd,
      mm.envStart,
      mm.envEnd,
    ];
    f.forEach((x, i) => dv.setBigUint64(i * 8, x, true));
    const auxvAt = data + 1024n;
    dv.setBigUint64(88, auxvAt, true);
    dv.setUint32(96, auxv.length * 8, true);
    dv.setUint32(100, exeFd >>> 0, true);
    inj.write(data, b.subarray(0, 104));
    const a = new Uint8Array(auxv.length * 8);
    const adv = new DataView(a.buffer);
    auxv.forEach((x, i) => adv.setBigUint64(i * 8, x, true));
    inj.write(auxvAt, a);
    inj.call(NR.prctl, [PR_SET_MM, PR_SET_MM_MAP, data, 104, 0], 'PR_SET_MM_MAP');
    if (exeFd >= 0) inj.call(NR.close, [exeFd]);
  });
}
