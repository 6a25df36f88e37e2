/**
 * The grammar of an image: which record follows which, walked from the schema (each record's `children`, the
 * top level's IMAGE_GRAMMAR), building the model. Core records have a visitor here; the records of the optional
 * kinds of state are decoded by their modules (src/kinds), found through the registry. Every count, order and
 * cross-record rule is checked; a violation is BAD_RECORD (or TRUNCATED) at the offending record's offset.
 */
import { CrimgError } from '../errors.js';
import { KINDS } from '../kinds/index.js';
import { type AnyKind, type OwnerName, type Owners, setValue } from '../kinds/kind.js';
import {
  type Credentials,
  type Mm,
  type Model,
  type Namespace,
  type NamespaceIds,
  NS_KINDS,
  type NocrReason,
  type OpenFile,
  type PageSource,
  type Task,
  type Thread,
  type Vma,
  MM_FIELD_NAMES,
  emptyCreds,
  emptyNsIds,
} from '../model.js';
import {
  CHECKSUM_XXH3_64,
  type Child,
  type Count,
  type Fields,
  IMAGE_GRAMMAR,
  INDEX_ENTRY_BYTES,
  IX,
  K,
  MAX_RUN_PAGES,
  PAGE_SIZE,
  RECORD_BY_KIND,
  RECORD_HEADER_BYTES,
  RF_MUST_UNDERSTAND,
  TRAILER_MAGIC,
  decodeFields,
  kindName,
} from '../schema.js';
import { type PageRec, type Rec, type RecordStream, checkPagesPayload } from './framing.js';

export type ReadMode = 'full' | 'meta';

export interface VmaStats {
  start: bigint;
  end: bigint;
  path: string | null;
  pages: number;
  stored: number;
  zero: number;
}
export interface TaskStats {
  pid: number;
  vmas: VmaStats[];
}

export interface ImageStats {
  fileBytes: number;
  records: number;
  pageRecords: number;
  pagesStored: number;
  pagesZero: number;
  pageBytes: number;
  metaBytes: number;
  imageCsum: bigint;
  tasks: TaskStats[];
}

export interface Parsed {
  model: Model;
  stats: ImageStats;
}

/** What the grammar needs from the image it builds a model for. */
export interface GrammarHooks {
  /** The PAGES records of a VMA, once all are read. */
  setRuns(vma: Vma, runs: PageRec[]): void;
  /** The page source of a VMA (given lazily: the VMA object is complete only after its children). */
  pageSource(vma: () => Vma): PageSource;
  onProgress?: (offset: number) => void;
}

const KIND_BY_RECORD: ReadonlyMap<number, AnyKind> = new Map(KINDS.map((k) => [k.record.kind, k]));
const def = (kind: number): readonly Child[] => RECORD_BY_KIND.get(kind)!.children ?? [];

/** The values of the optional kinds read for one task, with their records (for checks across the task). */
type KindValues = Map<AnyKind, [owner: unknown, value: unknown, rec: Rec][]>;

type Visitors = Partial<Record<number, (r: Rec, i: number) => void>>;

/** Walks the records of one image. */
class Walk {
  private pending: Rec | null = null;
  readonly stats: ImageStats;
  private readonly allRuns: { pid: number; r: PageRec }[] = [];

  constructor(
    private readonly rs: RecordStream,
    private readonly mode: ReadMode,
    private readonly hooks: GrammarHooks,
  ) {
    this.stats = {
      fileBytes: rs.src.size,
      records: 0,
      pageRecords: 0,
      pagesStored: 0,
      pagesZero: 0,
      pageBytes: 0,
      metaBytes: 0,
      imageCsum: 0n,
      tasks: [],
    };
  }

  // ------------------------------------------------------------ records

  /** The next record of a known kind (unknown kinds are skipped unless marked must-understand). */
  private next(): Rec | null {
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      return p;
    }
    const skip = this.mode === 'meta' ? (kind: number): boolean => kind === K.PAGES : undefined;
    for (;;) {
      const r = this.rs.next(skip);
      if (!r) return null;
      if (RECORD_BY_KIND.has(r.kind)) return r;
      if (r.flags & RF_MUST_UNDERSTAND)
        throw new CrimgError('BAD_RECORD', `unknown record kind ${kindName(r.kind)} marked must-understand`, {
          offset: r.off,
          kind: r.kind,
        });
    }
  }

  private peek(): Rec | null {
    return (this.pending ??= this.next());
  }

  private expect(kind: number, context: string): Rec {
    const r = this.next();
    if (!r)
      throw new CrimgError('TRUNCATED', `image ends where a ${kindName(kind)} record is expected (${context})`, { offset: this.rs.pos });
    if (r.kind !== kind)
      throw new CrimgError('BAD_RECORD', `expected a ${kindName(kind)} record (${context}), found ${kindName(r.kind)}`, {
        offset: r.off,
        kind: r.kind,
      });
    return r;
  }

  fields(r: Rec): Fields {
    return decodeFields(RECORD_BY_KIND.get(r.kind)!, this.rs.k.u8().subarray(r.ptr, r.ptr + r.len), r.off + RECORD_HEADER_BYTES);
  }

  bad(r: Rec, why: string): never {
    throw new CrimgError('BAD_RECORD', `${kindName(r.kind)} record: ${why}`, { offset: r.off, kind: r.kind });
  }

  // ------------------------------------------------------------ the schema's children

  /**
   * The records a parent's `children` list says follow it, in that order, each given to its visitor; the records of
   * optional kinds of state are decoded onto `owner` by their kind modules.
   */
  private children(list: readonly Child[], f: Fields, where: string, visit: Visitors, owner?: [OwnerName, unknown, KindValues]): void {
    for (const c of list) {
      const kd = KIND_BY_RECORD.get(c.kind);
      if (c.count === '?' || c.count === '*') {
        for (let i = 0; ; i++) {
          const r = this.peek();
          if (!r || r.kind !== c.kind) break;
          this.pending = null;
          if (kd && owner) this.kind(kd, r, owner[1], owner[2]);
          else visit[c.kind]!(r, i);
          if (c.count === '?') break;
        }
        continue;
      }
      const n = countOf(c.count, f);
      for (let i = 0; i < n; i++) visit[c.kind]!(this.expect(c.kind, n === 1 ? where : `${i + 1} of ${n} ${where}`), i);
    }
  }

  /** Decode the record of an optional kind onto its owner. */
  private kind(kd: AnyKind, r: Rec, owner: unknown, seen: KindValues): void {
    const v = kd.decode(this.fields(r), owner as Owners[OwnerName], (why) => this.bad(r, why));
    setValue(kd, owner as Owners[OwnerName], v);
    let list = seen.get(kd);
    if (!list) seen.set(kd, (list = []));
    list.push([owner, v, r]);
  }

  /** The checks of each kind across the task (a pipe's bytes on its lowest fd, both sockets of a pair ...). */
  private checkKinds(task: Task, seen: KindValues): void {
    for (const [kd, list] of seen) {
      if (!kd.checkTask) continue;
      kd.checkTask(task, list.map(([o, v]) => [o, v]) as never, (o: unknown, why: string) =>
        this.bad(list.find((x) => x[0] === o)?.[2] ?? list[0]![2], why),
      );
    }
  }

  // ------------------------------------------------------------ visitors

  image(): Model {
    this.rs.magic();
    const model: Model = { header: undefined as unknown as Model['header'], namespaces: [], tasks: [] };
    const pids = new Set<number>();
    let hf: Fields = {};
    let indexRec: Rec | null = null;
    const visit: Visitors = {
      [K.HEADER]: (r) => {
        hf = this.fields(r);
        model.header = this.header(r, hf);
      },
      [K.NS]: (r) => model.namespaces.push(this.ns(r)),
      [K.TASK]: (r) => model.tasks.push(this.task(r, pids)),
      [K.INDEX]: (r) => {
        this.index(r);
        indexRec = r;
      },
      [K.TRAILER]: (r) => this.trailer(r, indexRec!),
    };
    // HEADER comes first and holds the counts of the rest
    this.children(IMAGE_GRAMMAR.slice(0, 1), {}, 'first record', visit);
    this.children(IMAGE_GRAMMAR.slice(1), hf, 'of the image', visit);
    if (this.rs.pos !== this.rs.src.size)
      throw new CrimgError('BAD_RECORD', `${this.rs.src.size - this.rs.pos} bytes follow the trailer`, { offset: this.rs.pos });
    const st = this.stats;
    st.records = this.rs.records;
    st.pageBytes = st.pagesStored * PAGE_SIZE;
    st.metaBytes = st.fileBytes - st.pageBytes;
    return model;
  }

  private header(r: Rec, h: Fields): Model['header'] {
    if (h.checksumAlgo !== CHECKSUM_XXH3_64) this.bad(r, `unknown checksum algorithm ${h.checksumAlgo}`);
    if (h.pageSize !== PAGE_SIZE) this.bad(r, `page size ${h.pageSize} is not 4096`);
    return {
      crid: h.crid as bigint,
      createdNs: h.createdNs as bigint,
      freezeNs: h.freezeNs as bigint,
      flags: h.flags as number,
      tool: h.tool as string,
      uts: {
        sysname: h.sysname as string,
        nodename: h.nodename as string,
        release: h.release as string,
        version: h.version as string,
        machine: h.machine as string,
        domainname: h.domainname as string,
      },
    };
  }

  private ns(r: Rec): Namespace {
    const f = this.fields(r);
    const kind = NS_KINDS[f.nsKind as number];
    if (!kind) this.bad(r, `namespace kind ${f.nsKind} unknown`);
    const ns: Namespace = { kind: kind!, id: f.id as bigint };
    if ((f.nsFlags as number) & 1) {
      ns.nodename = f.nodename as string;
      ns.domainname = f.domainname as string;
    }
    if ((f.nsFlags as number) & ~1) this.bad(r, `reserved namespace flags ${f.nsFlags}`);
    return ns;
  }

  private task(tr: Rec, pids: Set<number>): Task {
    const tf = this.fields(tr);
    if (pids.has(tf.pid as number)) this.bad(tr, `duplicate pid ${tf.pid}`);
    pids.add(tf.pid as number);
    if ((tf.hasMm as number) > 1) this.bad(tr, `hasMm ${tf.hasMm}`);
    const task: Task = {
      pid: tf.pid as number,
      tgid: tf.tgid as number,
      ppid: tf.ppid as number,
      pgid: tf.pgid as number,
      sid: tf.sid as number,
      comm: tf.comm as string,
      exe: tf.exe as string,
      cwd: tf.cwd as string,
      root: tf.root as string,
      args: tf.args as string[],
      env: tf.env as string[],
      personality: tf.personality as number,
      exitSignal: tf.exitSignal as number,
      creds: emptyCreds(),
      rlimits: [],
      ns: emptyNsIds(),
      threads: [],
      mm: null,
      files: [],
      nocr: [],
    };
    const tstats: TaskStats = { pid: task.pid, vmas: [] };
    this.stats.tasks.push(tstats);
    const seen: KindValues = new Map();
    const tids = new Set<number>(),
      fds = new Set<number>();
    const where = `of task ${task.pid}`;
    this.children(
      def(K.TASK),
      tf,
      where,
      {
        [K.CREDS]: (r) => {
          task.creds = credsOf(this.fields(r));
        },
        [K.RLIMITS]: (r) => {
          task.rlimits = this.rlimits(r);
        },
        [K.NSIDS]: (r) => {
          task.ns = nsIdsOf(this.fields(r));
        },
        [K.THREAD]: (r) => task.threads.push(this.thread(r, tids, seen)),
        [K.MM]: (r) => {
          task.mm = this.mm(r, task.pid, tstats);
        },
        [K.FD]: (r) => task.files.push(this.fd(r, fds, seen)),
        [K.NOCR]: (r) => {
          const f = this.fields(r);
          task.nocr.push({ pid: f.pid as number, code: f.code as string, text: f.text as string } as NocrReason);
        },
      },
      ['task', task, seen],
    );
    this.checkKinds(task, seen);
    return task;
  }

  private rlimits(r: Rec): Task['rlimits'] {
    const rl = this.fields(r).limits as bigint[];
    if (rl.length % 2) this.bad(r, 'odd number of limit values');
    return Array.from({ length: rl.length / 2 }, (_, i) => ({ cur: rl[2 * i]!, max: rl[2 * i + 1]! }));
  }

  private thread(thr: Rec, tids: Set<number>, seen: KindValues): Thread {
    const f = this.fields(thr);
    if (tids.has(f.tid as number)) this.bad(thr, `duplicate tid ${f.tid}`);
    tids.add(f.tid as number);
    const flags = f.thFlags as number;
    if (flags & ~3) this.bad(thr, `reserved thread flags ${flags}`);
    const m = (): Uint8Array => this.rs.k.u8();
    const th: Thread = {
      tid: f.tid as number,
      regs: new BigUint64Array(27),
      fpu: new Uint8Array(0),
      xstate: null,
      sigmask: f.sigmask as bigint,
      sigpending: f.sigpending as bigint,
      rseq:
        flags & 2 ? { ptr: f.rseqPtr as bigint, len: f.rseqLen as number, sig: f.rseqSig as number, flags: f.rseqFlags as number } : null,
      state: f.state as string,
    };
    this.children(
      def(K.THREAD),
      f,
      `of thread ${th.tid}`,
      {
        [K.REGS]: (r) => {
          new Uint8Array(th.regs.buffer).set(m().subarray(r.ptr, r.ptr + 216));
        },
        [K.FPU]: (r) => {
          th.fpu = m().slice(r.ptr, r.ptr + 512);
        },
        [K.XSTATE]: (r) => {
          const x = this.fields(r);
          th.xstate = { xcr0: x.xcr0 as bigint, ext: x.ext as Uint8Array };
        },
      },
      ['thread', th, seen],
    );
    return th;
  }

  private fd(r: Rec, fds: Set<number>, seen: KindValues): OpenFile {
    const f = this.fields(r);
    if (fds.has(f.fd as number)) this.bad(r, `duplicate fd ${f.fd}`);
    fds.add(f.fd as number);
    if ((f.fdKind as number) > 2) this.bad(r, `fd kind ${f.fdKind}`);
    const file: OpenFile = {
      fd: f.fd as number,
      kind: f.fdKind as number,
      path: f.path as string,
      flags: f.flags as number,
      pos: f.pos as bigint,
      mode: f.mode as number,
      cloexec: f.cloexec !== 0,
      devMajor: f.devMajor as number,
      devMinor: f.devMinor as number,
      inode: f.inode as bigint,
      size: f.size as bigint,
    };
    this.children(def(K.FD), f, `of fd ${file.fd}`, {}, ['fd', file, seen]);
    return file;
  }

  private mm(mr: Rec, pid: number, tstats: TaskStats): Mm {
    const mf = this.fields(mr);
    const auxv = mf.auxv as bigint[];
    if (auxv.length % 2) this.bad(mr, 'odd auxv length');
    const mm = { auxv, vmas: [] as Vma[] } as unknown as Mm;
    for (const n of MM_FIELD_NAMES) (mm as unknown as Record<string, bigint>)[n] = mf[n] as bigint;
    let prevEnd = 0n;
    this.children(def(K.MM), mf, `of task ${pid}`, {
      [K.VMA]: (vr) => {
        const vma = this.vma(vr, pid, prevEnd, tstats);
        prevEnd = vma.end;
        mm.vmas.push(vma);
      },
    });
    return mm;
  }

  private vma(vr: Rec, pid: number, prevEnd: bigint, tstats: TaskStats): Vma {
    const vf = this.fields(vr);
    const start = vf.start as bigint,
      end = vf.end as bigint;
    if (start % 4096n || end % 4096n || start >= end)
      this.bad(vr, `range 0x${start.toString(16)}-0x${end.toString(16)} is empty or not page aligned`);
    if (start < prevEnd) this.bad(vr, `VMA 0x${start.toString(16)} overlaps or precedes the previous one`);
    if ((vf.prot as number) & ~7) this.bad(vr, `prot ${vf.prot}`);
    const vma: Vma = {
      start,
      end,
      prot: vf.prot as number,
      flags: vf.vmaFlags as number,
      pgoff: vf.pgoff as bigint,
      devMajor: vf.devMajor as number,
      devMinor: vf.devMinor as number,
      inode: vf.inode as bigint,
      path: vf.path as string | null,
      pages: undefined as unknown as PageSource,
    };
    vma.pages = this.hooks.pageSource(() => vma);
    const vs: VmaStats = { start, end, path: vma.path, pages: Number((end - start) / 4096n), stored: 0, zero: 0 };
    const runs: PageRec[] = [];
    let at = start;
    this.children(def(K.VMA), vf, `of the VMA at 0x${start.toString(16)}`, {
      [K.PAGES]: (pr) => {
        const rec = this.pages(pr, at, end);
        at = rec.addr + BigInt(rec.npages * PAGE_SIZE);
        runs.push(rec);
        this.allRuns.push({ pid, r: rec });
        vs.stored += rec.nstored;
        vs.zero += rec.npages - rec.nstored;
      },
    });
    this.hooks.setRuns(vma, runs);
    tstats.vmas.push(vs);
    return vma;
  }

  /** A PAGES record: its fixed part and bitmap checked, in its VMA [from, end) after the previous run. */
  private pages(pr: Rec, from: bigint, end: bigint): PageRec {
    this.hooks.onProgress?.(pr.off);
    const k = this.rs.k;
    let addr: bigint, npages: number, pflags: number, nstored: number;
    const bmBytesOf = (n: number): number => Math.ceil(Math.min(Math.max(n, 1), MAX_RUN_PAGES) / 64) * 8;
    if (pr.ptr >= 0 || pr.streamed) {
      const head = pr.streamed ? pr.streamed.head : pr.ptr;
      const endPtr = pr.streamed ? pr.streamed.end : pr.ptr + pr.len;
      const m = k.u8();
      const dv = new DataView(m.buffer, m.byteOffset + head, 16);
      addr = dv.getBigUint64(0, true);
      npages = dv.getUint32(8, true);
      pflags = dv.getUint32(12, true);
      nstored = checkPagesPayload(m, head, endPtr - bmBytesOf(npages), pr, npages, pflags);
    } else {
      let p = this.rs.ensure(pr.off + RECORD_HEADER_BYTES, 16);
      let m = k.u8();
      const dv = new DataView(m.buffer, m.byteOffset + p, 16);
      addr = dv.getBigUint64(0, true);
      npages = dv.getUint32(8, true);
      pflags = dv.getUint32(12, true);
      const bmBytes = bmBytesOf(npages);
      if (pr.len < 16 + bmBytes) this.bad(pr, `length ${pr.len} too short for ${npages} pages`);
      // the bitmap, the next record's header and fixed part: page runs are walked one small read per record
      p = this.rs.ensure(pr.off + RECORD_HEADER_BYTES + pr.len - bmBytes, bmBytes, bmBytes + 8 + 2 * RECORD_HEADER_BYTES);
      m = k.u8();
      nstored = checkPagesPayload(m, -1, p, pr, npages, pflags);
    }
    if (addr % 4096n || addr < from || addr + BigInt(npages * PAGE_SIZE) > end) {
      this.bad(pr, `run at 0x${addr.toString(16)} of ${npages} pages is outside its VMA or not in ascending order`);
    }
    const st = this.stats;
    st.pageRecords++;
    st.pagesStored += nstored;
    st.pagesZero += npages - nstored;
    return { addr, npages, nstored, off: pr.off, len: pr.len, csum: pr.csum };
  }

  private index(ir: Rec): void {
    const m = this.rs.k.u8();
    const dv = new DataView(m.buffer, m.byteOffset + ir.ptr, ir.len);
    const count = dv.getUint32(0, true);
    if (dv.getUint32(4, true) !== 0) this.bad(ir, 'reserved field not zero');
    if (ir.len !== 8 + count * INDEX_ENTRY_BYTES) this.bad(ir, `length ${ir.len} does not hold ${count} entries`);
    if (count !== this.allRuns.length) this.bad(ir, `${count} entries, but the image has ${this.allRuns.length} PAGES records`);
    for (let i = 0; i < count; i++) {
      const o = 8 + i * INDEX_ENTRY_BYTES;
      const e = this.allRuns[i]!;
      if (
        dv.getInt32(o + IX.pid, true) !== e.pid
        || dv.getUint32(o + IX.npages, true) !== e.r.npages
        || dv.getBigUint64(o + IX.addr, true) !== e.r.addr
        || dv.getBigUint64(o + IX.offset, true) !== BigInt(e.r.off)
      ) {
        throw new CrimgError('BAD_RECORD', `INDEX entry ${i} does not match PAGES record at ${e.r.off}`, {
          offset: ir.off + RECORD_HEADER_BYTES + o,
          kind: K.INDEX,
        });
      }
    }
    // the whole-image checksum covers every record header before the trailer
    this.stats.imageCsum = this.rs.k.xxh3Digest(this.rs.imgSlot);
  }

  private trailer(trr: Rec, ir: Rec): void {
    const t = this.fields(trr);
    const imageCsum = this.stats.imageCsum;
    if (t.tmagic !== TRAILER_MAGIC)
      throw new CrimgError('BAD_MAGIC', 'trailer magic is wrong', { offset: trr.off + RECORD_HEADER_BYTES, kind: K.TRAILER });
    if (t.records !== BigInt(this.rs.records - 1))
      this.bad(trr, `trailer counts ${t.records} records, the image has ${this.rs.records - 1}`);
    if (t.indexOffset !== BigInt(ir.off)) this.bad(trr, `trailer puts INDEX at ${t.indexOffset}, it is at ${ir.off}`);
    if (t.imageCsum !== imageCsum) {
      throw new CrimgError(
        'CHECKSUM_MISMATCH',
        `whole-image checksum 0x${imageCsum.toString(16)} does not match the trailer's 0x${(t.imageCsum as bigint).toString(16)}`,
        { offset: trr.off, kind: K.TRAILER },
      );
    }
  }
}

/** How many records a count asks for, given the parent's fields. */
function countOf(c: Count, f: Fields): number {
  if (c === '1') return 1;
  if (typeof c === 'string') return 0;
  const v = f[c.field] as number;
  return c.bit === undefined ? v : (v >>> c.bit) & 1;
}

function credsOf(c: Fields): Credentials {
  const x = c as unknown as Credentials;
  return {
    uid: x.uid,
    gid: x.gid,
    euid: x.euid,
    egid: x.egid,
    suid: x.suid,
    sgid: x.sgid,
    fsuid: x.fsuid,
    fsgid: x.fsgid,
    groups: x.groups,
    capInh: x.capInh,
    capPrm: x.capPrm,
    capEff: x.capEff,
    capBnd: x.capBnd,
    capAmb: x.capAmb,
    securebits: x.securebits,
    noNewPrivs: x.noNewPrivs,
    seccompMode: x.seccompMode,
  };
}

function nsIdsOf(f: Fields): NamespaceIds {
  const n = f as unknown as NamespaceIds;
  return { uts: n.uts, ipc: n.ipc, mnt: n.mnt, pid: n.pid, net: n.net, user: n.user, cgroup: n.cgroup, time: n.time };
}

/** Walk the records of an image (after its magic) into a model, checking the grammar. */
export function parse(rs: RecordStream, mode: ReadMode, hooks: GrammarHooks): Parsed {
  const w = new Walk(rs, mode, hooks);
  const model = w.image();
  return { model, stats: w.stats };
}
