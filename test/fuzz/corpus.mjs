/**
 * The seed images the fuzzer mutates: generate() at small sizes under various
 * specs, hand-made models (zero and absent pages, tasks without memory or
 * threads, unicode strings, null paths, every optional kind of state of the
 * format), and images emitted record by record with RecordWriter (unknown
 * skippable records, PAGES runs of 1..1024 pages). Everything is deterministic.
 * `lib` is the crimg module (src or dist). Every record kind of the schema is in
 * some seed (test/reliability-fuzz.test.ts checks it against RECORDS).
 */

/** @param {any} lib */
export async function buildCorpus(lib, { small = false } = {}) {
  const out = [];
  const add = async (name, model) => {
    const sink = new lib.MemorySink();
    await lib.writeImage(model, sink);
    out.push({ name, bytes: sink.bytes() });
  };
  await add('empty', emptyModel(lib));
  await add('hand-small', handModel(lib, 1, { pages: 3 }));
  await add('hand-odd', oddModel(lib));
  await add('hand-zero-runs', zeroRunsModel(lib));
  out.push({ name: 'rw-unknown-bigruns', bytes: await recordWriterImage(lib) });
  await add('gen-min', lib.generate({ seed: 11, size: 0, tasks: 1, threads: 1, vmas: 0, files: 0, namespaces: false }));
  await add('hand-optional-records', optionalRecordsModel(lib));
  await add('hand-all-kinds', allKindsModel(lib));
  if (!small) {
    await add(
      'gen-tree',
      lib.generate({ seed: 12, size: 64 * 1024, tasks: 3, fanout: 2, threads: 2, vmas: 2, files: 2, content: 'text', zeroRatio: 0.5 }),
    );
    await add(
      'gen-pattern',
      lib.generate({
        seed: 13,
        size: 32 * 1024,
        tasks: 2,
        threads: 3,
        vmas: 1,
        files: 1,
        content: 'pattern',
        zeroRatio: 0.9,
        dupRatio: 0.5,
      }),
    );
    await add('hand-two-tasks', handModel(lib, 7, { pages: 40 }));
  }
  return out;
}

/** A live-like model with the optional records: SIGACTS (handlers, ignored signals) and FUTEX per thread. */
function optionalRecordsModel(lib) {
  const m = handModel(lib, 3, { pages: 2 });
  for (const t of m.tasks) {
    t.sigactions = [
      { sig: 2, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
      { sig: 10, handler: 0x401130n, flags: 0x14000004n, restorer: 0x7f1234560050n, mask: 2n },
      { sig: 33, handler: 0x7f12345a0000n, flags: 0x4000000n, restorer: 0x7f1234560050n, mask: 0n },
    ];
    t.itimers = [
      { which: 0, intervalUs: 20000n, valueUs: 0n },
      { which: 1, intervalUs: 0n, valueUs: 7n },
    ];
    t.threads.forEach((th, i) => {
      th.sigaltstack = { sp: 0x7f1234700000n, size: 8192n, flags: i ? 2 : 0 };
      th.futex = { clearChildTid: 0x7f12340002d0n + BigInt(i << 20), robustHead: 0x7f12340002e0n + BigInt(i << 20), robustLen: 24n };
    });
  }
  return m;
}

/**
 * Every optional kind of state of the format, in two variants (task 100 and task 200), the values at the edges of
 * what the reader accepts; one fd of each task carries several fd kinds at once.
 */
function allKindsModel(lib) {
  const m = handModel(lib, 5, { pages: 2 });
  const [a, b] = m.tasks;
  const EOF = 0xffffffffffffffffn;
  const te = new TextEncoder();
  const other = (fd, path, extra) => ({
    fd,
    kind: lib.FdKind.OTHER,
    path,
    flags: 2,
    pos: 0n,
    mode: 0o600,
    cloexec: fd % 2 === 0,
    devMajor: 0,
    devMinor: 15,
    inode: BigInt(9000 + fd),
    size: 0n,
    ...extra,
  });
  const loop6 = Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 1 : 0));
  // task 100: handlers and ignored signals, two interval timers, POSIX timers of each notification, both thread kinds
  a.sigactions = [
    { sig: 1, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
    { sig: 10, handler: 0x401000n, flags: 0x4000000n, restorer: 0x402000n, mask: 1n << 13n },
    { sig: 64, handler: 0x7f0000001000n, flags: 0x14000004n, restorer: 0x402000n, mask: EOF },
  ];
  a.itimers = [
    { which: 0, intervalUs: 50_000_000n, valueUs: 1_234_567n },
    { which: 1, intervalUs: 20_000n, valueUs: 0n },
    { which: 2, intervalUs: 0n, valueUs: 10n },
  ];
  a.posixTimers = [
    { id: 0, clock: 1, notify: 0, notifyTid: 0, signo: 10, sigevValue: 77n, intervalNs: 30_000_000_000n, valueNs: 12_345n },
    { id: 3, clock: -6, notify: 4, notifyTid: a.threads[1].tid, signo: 12, sigevValue: 0x7f0000001000n, intervalNs: 0n, valueNs: 5_000n },
    { id: 0x7fffffff, clock: 11, notify: 1, notifyTid: 0, signo: 0, sigevValue: 0n, intervalNs: 0n, valueNs: 0n },
  ];
  a.procAttrs = { umask: 0o027, oomScoreAdj: -345, dumpable: false, thpDisable: true, childSubreaper: true, timerSlackNs: 123456n };
  a.threads[0].futex = { clearChildTid: 0x7f00000010d0n, robustHead: 0x7f00000010e0n, robustLen: 24n };
  a.threads[0].sigaltstack = { sp: 0x7f0000100000n, size: 65536n, flags: 0x80000000 };
  a.threads[1].futex = { clearChildTid: 0n, robustHead: 0n, robustLen: 0n };
  a.threads[1].sigaltstack = { sp: 0n, size: 0n, flags: 2 };
  // its fds: locks, a pipe (bytes on its lowest fd), a stream pair with bytes queued to each socket, each anonymous
  // file with an epoll watching the others, inotify watches, listeners of both families, and one fd with four kinds
  a.files[1].locks = [
    { kind: 1, write: true, start: 0n, end: EOF },
    { kind: 2, write: false, start: 10n, end: 19n },
    { kind: 3, write: true, start: 0x7fffffffffffffffn, end: EOF },
  ];
  a.files[2].locks = [{ kind: 1, write: false, start: 0n, end: EOF }];
  a.files.push(
    other(5, 'pipe:[5084]', { pipe: { ino: 5084n, write: false, size: 65536, data: te.encode('fuzz pipe') } }),
    other(6, 'pipe:[5084]', { pipe: { ino: 5084n, write: true, size: 65536 } }),
    other(7, 'socket:[5085]', { unixPair: { pair: 5085n, second: false, type: 1, data: te.encode('to the first') } }),
    other(8, 'socket:[5086]', { unixPair: { pair: 5085n, second: true, type: 1, data: te.encode('to the second') } }),
    other(9, 'socket:[5085]', { unixPair: { pair: 5085n, second: false, type: 1 } }),
    other(10, 'anon_inode:[eventfd]', { anon: { kind: 1, values: [5n, 1n] } }),
    other(11, 'anon_inode:[timerfd]', { anon: { kind: 2, values: [1n, 0n, 100_000_000_000n, 99_000_000_000n, 3n] } }),
    other(12, 'anon_inode:[signalfd]', { anon: { kind: 3, values: [1n << 9n] } }),
    other(13, 'anon_inode:[eventpoll]', { anon: { kind: 4, values: [10n, 25n, 42n, 11n, 1n, EOF, 12n, 0xffffffffn, 0n] } }),
    other(14, 'anon_inode:inotify', {
      inotify: [
        { wd: 1, mask: 0x100, path: '/tmp/wätched' },
        { wd: 3, mask: 0xfff, path: '/etc' },
      ],
    }),
    other(15, 'socket:[5087]', { tcpListen: { family: 2, addr: new Uint8Array([127, 0, 0, 1]), port: 46709, backlog: 7, opts: 1 } }),
    other(16, 'socket:[5088]', { tcpListen: { family: 10, addr: loop6, port: 8080, backlog: 128, opts: 7 } }),
    other(17, 'socket:[5089]', {
      anon: { kind: 3, values: [0n] },
      pipe: { ino: 5090n, write: true, size: 4096, data: new Uint8Array(4096).fill(0x5a) },
      inotify: [{ wd: 0x7fffffff, mask: 0xffffffff, path: '/' }],
      tcpListen: { family: 2, addr: new Uint8Array(4), port: 65535, backlog: 0, opts: 0 },
    }),
  );
  // task 200: other variants of each (empty lists, a disarmed timer, a datagram pair, an epoll watching nothing)
  b.sigactions = [];
  b.itimers = [];
  b.posixTimers = [{ id: 1, clock: 0, notify: 0, notifyTid: 0, signo: 1, sigevValue: EOF, intervalNs: EOF, valueNs: EOF }];
  b.procAttrs = { umask: 0o777, oomScoreAdj: 1000, dumpable: true, thpDisable: false, childSubreaper: false, timerSlackNs: EOF };
  b.threads[0].sigaltstack = { sp: EOF, size: EOF, flags: 1 };
  b.files[1].locks = [{ kind: 3, write: false, start: 0n, end: 0n }];
  b.files.push(
    other(20, 'socket:[6000]', { unixPair: { pair: EOF, second: true, type: 2 } }),
    other(21, 'socket:[6001]', { unixPair: { pair: EOF, second: false, type: 2 } }),
    other(22, 'socket:[6002]', { unixPair: { pair: 0n, second: false, type: 5 } }),
    other(23, 'socket:[6003]', { unixPair: { pair: 0n, second: true, type: 5 } }),
    other(24, 'anon_inode:[eventpoll]', { anon: { kind: 4, values: [] } }),
    other(25, 'anon_inode:[timerfd]', { anon: { kind: 2, values: [9n, 3n, EOF, 0n, EOF] } }),
    other(26, 'anon_inode:inotify', { inotify: [] }),
    other(27, 'pipe:[7000]', { pipe: { ino: 0n, write: false, size: 0x80000000 } }),
    other(28, 'socket:[7001]', {
      inotify: [{ wd: 2, mask: 0, path: '/ünï' }],
      tcpListen: { family: 10, addr: new Uint8Array(16).fill(0xff), port: 1, backlog: 0xffffffff, opts: 4 },
    }),
  );
  return m;
}

function header(lib, tool = 'crimg fuzz') {
  return {
    crid: 42n,
    createdNs: 1_767_225_600_000_000_000n,
    freezeNs: 5n,
    flags: lib.HeaderFlags.LIVE,
    tool,
    uts: { sysname: 'Linux', nodename: 'fuzz-ħost', release: '6.1.0', version: '#1 SMP', machine: 'x86_64', domainname: '(none)' },
  };
}

export function emptyModel(lib) {
  return { header: header(lib), namespaces: [], tasks: [] };
}

function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function data(seed, npages, zeroEvery) {
  const r = prng(seed);
  const d = new Uint8Array(npages * 4096);
  for (let p = 0; p < npages; p++) {
    if (zeroEvery && p % zeroEvery === 1) continue;
    for (let i = 0; i < 4096; i += 64) d[p * 4096 + i] = (r() & 0xff) | 1;
  }
  return d;
}

function task(lib, pid, ppid, seed, { pages = 5, mm = true, threads = 2, files = true } = {}) {
  const r = prng(seed * 977 + pid);
  const ths = [];
  for (let j = 0; j < threads; j++) {
    const th = lib.newThread(pid + j);
    for (let i = 0; i < 27; i++) th.regs[i] = (BigInt(r()) << 32n) | BigInt(r());
    th.fpu[160 + j] = 0x5a;
    if (j % 2 === 0) th.xstate = { xcr0: 0x207n, ext: new Uint8Array(j === 0 ? 832 : 64).map((_, i) => (i * 7 + pid) & 0xff) };
    if (j === 1) th.rseq = { ptr: 0x7f0000001000n, len: 32, sig: 0x53053053, flags: 0 };
    th.state = j === 0 ? 'S' : 'R';
    ths.push(th);
  }
  const { Prot, VmaFlags, FdKind, MemoryPageSource, NO_PAGES } = lib;
  const vmas = mm
    ? [
        {
          start: 0x400000n,
          end: 0x400000n + BigInt(pages * 4096),
          prot: Prot.READ | Prot.EXEC,
          flags: 0,
          pgoff: 0n,
          devMajor: 8,
          devMinor: 1,
          inode: 1234n,
          path: '/usr/bin/fuzz',
          pages: new MemoryPageSource(data(seed, pages, 3)),
        },
        {
          start: 0x600000n,
          end: 0x608000n,
          prot: Prot.READ | Prot.WRITE,
          flags: VmaFlags.ANON | VmaFlags.HEAP,
          pgoff: 0n,
          devMajor: 0,
          devMinor: 0,
          inode: 0n,
          path: '[heap]',
          pages: new MemoryPageSource(data(seed + 1, 8, 2), [
            [1, 2],
            [5, 3],
          ]),
        },
        {
          start: 0x7f0000000000n,
          end: 0x7f0000010000n,
          prot: Prot.READ | Prot.WRITE,
          flags: VmaFlags.ANON,
          pgoff: 0n,
          devMajor: 0,
          devMinor: 0,
          inode: 0n,
          path: null,
          pages: new MemoryPageSource(data(seed + 2, 16, 5), [[0, 16]]),
        },
        {
          start: 0x7ffd00000000n,
          end: 0x7ffd00002000n,
          prot: Prot.READ,
          flags: VmaFlags.VVAR,
          pgoff: 0n,
          devMajor: 0,
          devMinor: 0,
          inode: 0n,
          path: '[vvar]',
          pages: NO_PAGES,
        },
      ]
    : [];
  return {
    pid,
    tgid: pid,
    ppid,
    pgid: 100,
    sid: 100,
    comm: `f${pid}`,
    exe: '/usr/bin/fuzz',
    cwd: '/tmp/ünï',
    root: '/',
    args: ['fuzz', '-x', 'ünïcode ✓', ''],
    env: ['A=1', 'EMOJI=🦀'],
    personality: 0,
    exitSignal: 17,
    creds: { ...lib.emptyCreds(), uid: 1000, euid: 1000, groups: [1000, 27], capBnd: 0x1ffffffffffn },
    rlimits: lib.defaultRlimits(),
    ns: { ...lib.emptyNsIds(), pid: 4026531836n, uts: 4026531838n },
    threads: ths,
    mm: mm
      ? {
          startCode: 0x400000n,
          endCode: 0x405000n,
          startData: 0x600000n,
          endData: 0x601000n,
          startBrk: 0x600000n,
          brk: 0x608000n,
          startStack: 0x7ffd00001000n,
          argStart: 1n,
          argEnd: 2n,
          envStart: 3n,
          envEnd: 4n,
          auxv: [6n, 4096n, 33n, 0x7ffd00000000n],
          vmas,
        }
      : null,
    files: files
      ? [
          {
            fd: 0,
            kind: FdKind.OTHER,
            path: '/dev/null',
            flags: 0,
            pos: 0n,
            mode: 0o20666,
            cloexec: false,
            devMajor: 1,
            devMinor: 3,
            inode: 5n,
            size: 0n,
          },
          {
            fd: 3,
            kind: FdKind.REGULAR,
            path: '/tmp/dätä',
            flags: 2,
            pos: 12345n,
            mode: 0o100644,
            cloexec: true,
            devMajor: 8,
            devMinor: 1,
            inode: 99n,
            size: 65536n,
          },
          {
            fd: 4,
            kind: FdKind.DIRECTORY,
            path: '/tmp',
            flags: 0o200000,
            pos: 0n,
            mode: 0o40755,
            cloexec: false,
            devMajor: 8,
            devMinor: 1,
            inode: 2n,
            size: 4096n,
          },
        ]
      : [],
    nocr: pid % 2 === 0 ? [{ code: 'SOCKET_EXTERNAL', pid, text: 'fd 5 is a socket ⚠' }] : [],
  };
}

export function handModel(lib, seed, { pages = 5 } = {}) {
  return {
    header: header(lib),
    namespaces: [
      { kind: 'uts', id: 4026531838n, nodename: 'box', domainname: '(none)' },
      { kind: 'pid', id: 4026531836n },
    ],
    tasks: [task(lib, 100, 1, seed, { pages }), task(lib, 200, 100, seed + 1, { pages: 2, threads: 1 })],
  };
}

/** Unusual but valid: a task without memory, one without threads, one with an empty address space. */
export function oddModel(lib) {
  const t1 = task(lib, 10, 0, 3, { mm: false, threads: 1, files: false });
  const t2 = task(lib, 11, 10, 4, { mm: false, threads: 0 });
  const t3 = task(lib, 12, 10, 5, { pages: 1, threads: 1 });
  t3.mm.vmas = [];
  return {
    header: { ...header(lib, ''), uts: { sysname: '', nodename: '', release: '', version: '', machine: '', domainname: '' } },
    namespaces: [{ kind: 'time', id: 0n }],
    tasks: [t1, t2, t3],
  };
}

/** One VMA of 300 pages, all zero but populated: PAGES records of 256 and 44 pages storing nothing. */
export function zeroRunsModel(lib) {
  const t = task(lib, 1, 0, 9, { threads: 1, files: false });
  t.mm.vmas = [
    {
      start: 0x10000000n,
      end: 0x10000000n + 300n * 4096n,
      prot: lib.Prot.READ | lib.Prot.WRITE,
      flags: lib.VmaFlags.ANON,
      pgoff: 0n,
      devMajor: 0,
      devMinor: 0,
      inode: 0n,
      path: null,
      pages: new lib.MemoryPageSource(new Uint8Array(0), [[0, 300]]),
    },
  ];
  return { header: header(lib), namespaces: [], tasks: [t] };
}

/**
 * An image emitted record by record: unknown kinds without the must-understand flag
 * (a reader skips them) between records, and PAGES runs of 1, 63, 64, 65 and 1024 pages.
 */
export async function recordWriterImage(lib) {
  const K = lib.RecordKind;
  const sink = new lib.MemorySink();
  const w = new lib.RecordWriter(sink);
  const unknown = async (kind, n) => {
    await w.raw(
      kind,
      Uint8Array.from({ length: n }, (_, i) => (i * 31) & 0xff),
      0,
    );
  };
  await w.magic();
  const h = header(lib);
  await w.record(K.HEADER, { ...h, ...h.uts, ntasks: 1, nns: 0, checksumAlgo: 1, pageSize: 4096 });
  await unknown(0x0003, 5);
  const t = task(lib, 77, 1, 21, { threads: 1, files: false });
  await w.record(K.TASK, { ...t, nthreads: 1, nfiles: 0, nnocr: 0, hasMm: 1 });
  await w.record(K.CREDS, t.creds);
  await unknown(0x01fe, 0);
  await w.record(K.RLIMITS, { limits: t.rlimits.flatMap((x) => [x.cur, x.max]) });
  await w.record(K.NSIDS, t.ns);
  const th = t.threads[0];
  await w.record(K.THREAD, {
    tid: th.tid,
    thFlags: 1,
    sigmask: 1n,
    sigpending: 0n,
    rseqPtr: 0n,
    rseqLen: 0,
    rseqSig: 0,
    rseqFlags: 0,
    state: 'S',
  });
  await w.raw(K.REGS, new Uint8Array(th.regs.buffer, th.regs.byteOffset, 216));
  await w.raw(K.FPU, th.fpu);
  await unknown(0x0214, 16);
  const xb = new Uint8Array(8 + th.xstate.ext.length);
  new DataView(xb.buffer).setBigUint64(0, th.xstate.xcr0, true);
  xb.set(th.xstate.ext, 8);
  await w.raw(K.XSTATE, xb);
  const runs = [1, 63, 64, 65, 1024];
  const base = 0x20000000n;
  const total = runs.reduce((a, n) => a + n + 1, 0);
  await w.record(K.MM, { ...t.mm, nvmas: 1, mmFlags: 0 });
  await w.record(K.VMA, {
    start: base,
    end: base + BigInt(total * 4096),
    pgoff: 0n,
    inode: 0n,
    prot: 3,
    vmaFlags: 2,
    devMajor: 0,
    devMinor: 0,
    path: null,
  });
  let page = 0;
  for (const [ri, n] of runs.entries()) {
    const addr = base + BigInt(page * 4096);
    const bm = new Uint8Array(Math.ceil(n / 64) * 8);
    const stored = [];
    for (let p = 0; p < n; p++)
      if (p % 97 === ri || p === n - 1) {
        bm[p >> 3] |= 1 << (p & 7);
        stored.push(p);
      }
    const payload = new Uint8Array(16 + stored.length * 4096 + bm.length);
    const dv = new DataView(payload.buffer);
    dv.setBigUint64(0, addr, true);
    dv.setUint32(8, n, true);
    stored.forEach((p, i) => payload.fill(((p * 13 + ri) & 0xff) | 1, 16 + i * 4096, 16 + (i + 1) * 4096));
    payload.set(bm, 16 + stored.length * 4096);
    w.index.push({ pid: t.pid, npages: n, addr, offset: w.offset });
    await w.raw(K.PAGES, payload);
    if (ri === 2) await unknown(0x0304, 9);
    page += n + 1; // a gap of one absent page between runs
  }
  await unknown(0x7f02, 24);
  await w.finish();
  return sink.bytes();
}
