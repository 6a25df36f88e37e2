/**
 * ELF core files for the fuzzer: seeds (cores crimg's exporter makes from the image
 * corpus, plus real cores given with --core, e.g. from gdb's gcore) and seeded
 * structure-aware mutations: the ELF header, program headers (offsets and sizes past
 * the end, huge and 0xffffffff... values, overlapping and unsorted segments, types
 * swapped), notes (namesz/descsz 0, small, huge, past the end; types and names
 * swapped; NT_FILE counts inflated; descriptor bytes) and raw damage (bit flips, byte
 * substitutions, truncation at every structure boundary, appended bytes).
 * Independent of src/: its own ELF walker.
 */
import { rng32 } from './mutate.mjs';

const EHDR = 64,
  PHDR = 56,
  PT_LOAD = 1,
  PT_NOTE = 4;
const NOTE_TYPES = [1, 2, 3, 4, 6, 0x53494749, 0x46494c45, 0x202, 0x205, 0x200, 0];

/** Walk a well-formed core: program headers and notes with their offsets. */
export function parseElf(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(dv.getBigUint64(32, true));
  const phnum = dv.getUint16(56, true);
  const phdrs = [];
  const notes = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * PHDR;
    const ph = {
      off: o,
      type: dv.getUint32(o, true),
      offset: Number(dv.getBigUint64(o + 8, true)),
      vaddr: dv.getBigUint64(o + 16, true),
      filesz: Number(dv.getBigUint64(o + 32, true)),
      memsz: dv.getBigUint64(o + 40, true),
    };
    phdrs.push(ph);
    if (ph.type === PT_NOTE) {
      let n = ph.offset;
      const end = ph.offset + ph.filesz;
      while (n + 12 <= end) {
        const namesz = dv.getUint32(n, true),
          descsz = dv.getUint32(n + 4, true),
          type = dv.getUint32(n + 8, true);
        const nameOff = n + 12;
        const descOff = nameOff + Math.ceil(namesz / 4) * 4;
        notes.push({ off: n, namesz, descsz, type, nameOff, descOff });
        n = descOff + Math.ceil(descsz / 4) * 4;
      }
    }
  }
  return { phoff, phnum, phdrs, notes, loads: phdrs.filter((p) => p.type === PT_LOAD) };
}

/** Cores made by crimg's exporter from the image corpus (first task of each model with memory). */
export async function buildElfCorpus(lib, corpus) {
  const out = [];
  for (const b of corpus) {
    const img = lib.readImage(b.bytes);
    try {
      const t = img.model.tasks.find((x) => x.mm && x.threads.length);
      if (!t) continue;
      const sink = new lib.MemorySink();
      await lib.toElfCore(img, sink, { pid: t.pid });
      out.push({ name: `elf:${b.name}`, bytes: sink.bytes() });
    } finally {
      img.close();
    }
  }
  return out;
}

const U64 = [
  0n,
  1n,
  7n,
  0xfffn,
  0x1000n,
  0x1001n,
  0xffffffffn,
  0x100000000n,
  0x7fffffffffffn,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xfffffffffffff000n,
  0xffffffffffffffffn,
  0x1fffffffffffffn,
  0x20000000000000n,
];
const U32 = [0, 1, 2, 3, 4, 5, 8, 12, 16, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff];
const U16 = [0, 1, 2, 3, 55, 56, 57, 64, 0x7fff, 0xfffe, 0xffff];

function u64v(r, old, size) {
  return r.weighted([
    [4, () => r.pick(U64)],
    [3, () => BigInt.asUintN(64, old + BigInt(r.pick([1, -1, 8, -8, 56, -56, 4096, -4096, 1 << 20])))],
    [2, () => BigInt(size) + BigInt(r.pick([-1, 0, 1, 4096, -4096]))],
    [1, () => old ^ (1n << BigInt(r.int(64)))],
    [1, () => r.u64()],
  ])();
}
function u32v(r, old, size) {
  return r.weighted([
    [4, () => r.pick(U32)],
    [3, () => (old + r.pick([1, -1, 4, -4, 8, 12, 4096])) >>> 0],
    [1, () => (size + r.pick([-1, 0, 1])) >>> 0],
    [1, () => r.u32()],
  ])();
}

/** One mutant of one base core, fully determined by (seed, iteration). */
export function mutateElf(ectx, seed, iteration, attempt = 0) {
  const r = rng32(seed, iteration, 0xe1f, attempt);
  const base = r.int(ectx.bases.length);
  const { bytes, parsed: P } = ectx.bases[base];
  const out = bytes.slice();
  const dv = new DataView(out.buffer);
  const size = bytes.length;
  const set64 = (o, v) => dv.setBigUint64(o, BigInt.asUintN(64, v), true);
  const note = () => (P.notes.length ? r.pick(P.notes) : null);
  const op = r.weighted([
    [6, 'flip'],
    [5, 'bytes'],
    [6, 'truncate'],
    [1, 'append'],
    [5, 'ehdr'],
    [10, 'phdr'],
    [4, 'overlap'],
    [2, 'phswap'],
    [8, 'notesz'],
    [3, 'notetype'],
    [2, 'notename'],
    [6, 'notedesc'],
    [3, 'ntfile'],
  ]);
  let what = op;
  switch (op) {
    case 'flip':
    case 'bytes': {
      const n = r.range(1, 4);
      for (let i = 0; i < n; i++) {
        const nt = note();
        const region = r.weighted([
          [2, [0, EHDR]],
          [3, [P.phoff, P.phoff + P.phnum * PHDR]],
          [3, nt ? [nt.off, nt.off + 12] : [0, EHDR]],
          [3, nt ? [nt.descOff, nt.descOff + Math.max(1, nt.descsz)] : [0, EHDR]],
          [1, [0, size]],
        ]);
        const at = Math.min(size - 1, region[0] + r.int(Math.max(1, region[1] - region[0])));
        if (op === 'flip') out[at] ^= 1 << r.int(8);
        else out[at] = r.pick([0, 0xff, 0x7f, 0x80, r.int(256)]);
      }
      what = `${op}${n}`;
      break;
    }
    case 'truncate': {
      const nt = note();
      const ld = P.loads.length ? r.pick(P.loads) : null;
      const cls = r.pick(['ehdr', 'phdrs', 'phdr-end', 'note-hdr', 'note-desc', 'notes-end', 'load-start', 'load-mid', 'last']);
      let at = {
        ehdr: r.int(EHDR),
        phdrs: P.phoff + r.int(P.phnum * PHDR),
        'phdr-end': P.phoff + P.phnum * PHDR,
        'note-hdr': nt ? nt.off + r.int(12) : 1,
        'note-desc': nt ? nt.descOff + r.int(Math.max(1, nt.descsz)) : 1,
        'notes-end': nt ? nt.descOff + nt.descsz : 1,
        'load-start': ld ? ld.offset : 1,
        'load-mid': ld ? ld.offset + r.int(Math.max(1, ld.filesz)) : 1,
        last: size - 1,
      }[cls];
      at = Math.max(0, Math.min(size - 1, at));
      return { base, bytes: bytes.slice(0, at), op: `elf:truncate:${cls}`, level: 'raw', fixIndex: false };
    }
    case 'append': {
      const extra = Uint8Array.from({ length: r.pick([1, 8, 56, 4096]) }, () => r.int(256));
      const o2 = new Uint8Array(size + extra.length);
      o2.set(bytes);
      o2.set(extra, size);
      return { base, bytes: o2, op: 'elf:append', level: 'raw', fixIndex: false };
    }
    case 'ehdr': {
      const f = r.pick([
        ['ident', 4, 1],
        ['ident', 5, 1],
        ['ident', 6, 1],
        ['type', 16, 2],
        ['machine', 18, 2],
        ['version', 20, 4],
        ['phoff', 32, 8],
        ['shoff', 40, 8],
        ['ehsize', 52, 2],
        ['phentsize', 54, 2],
        ['phnum', 56, 2],
        ['phnum', 56, 2],
        ['shentsize', 58, 2],
        ['shnum', 60, 2],
        ['shstrndx', 62, 2],
      ]);
      const [name, o, sz] = f;
      if (sz === 8) set64(o, u64v(r, dv.getBigUint64(o, true), size));
      else if (sz === 4) dv.setUint32(o, u32v(r, dv.getUint32(o, true), size), true);
      else if (sz === 2) dv.setUint16(o, r.chance(0.7) ? r.pick(U16) : (dv.getUint16(o, true) + r.pick([1, -1, 2])) & 0xffff, true);
      else out[o] = r.pick([0, 1, 2, 3, 0xff]);
      what = `ehdr.${name}`;
      break;
    }
    case 'phdr': {
      if (!P.phnum) return null;
      const ph = r.pick(P.phdrs);
      const f = r.pick([
        ['type', 0, 4],
        ['flags', 4, 4],
        ['offset', 8, 8],
        ['offset', 8, 8],
        ['vaddr', 16, 8],
        ['vaddr', 16, 8],
        ['filesz', 32, 8],
        ['filesz', 32, 8],
        ['memsz', 40, 8],
        ['memsz', 40, 8],
        ['align', 48, 8],
      ]);
      const [name, o, sz] = f;
      if (name === 'type') dv.setUint32(ph.off, r.pick([0, 1, 2, 3, 4, 6, 7, 0x6474e550, 0xffffffff].filter((t) => t !== ph.type)), true);
      else if (name === 'vaddr' && r.chance(0.3)) set64(ph.off + 16, ph.vaddr + BigInt(1 + r.int(4095)));
      else if (name === 'memsz' && r.chance(0.3)) set64(ph.off + 40, BigInt(Math.max(0, ph.filesz - 4096)));
      else if (sz === 8) set64(ph.off + o, u64v(r, dv.getBigUint64(ph.off + o, true), size));
      else dv.setUint32(ph.off + o, u32v(r, dv.getUint32(ph.off + o, true), size), true);
      what = `phdr.${ph.type === PT_LOAD ? 'load' : ph.type === PT_NOTE ? 'note' : ph.type}.${name}`;
      break;
    }
    case 'overlap': {
      // a PT_LOAD moved onto (part of) another one, or a program header copied over another
      if (P.loads.length < 2) return null;
      const a = r.pick(P.loads),
        b = r.pick(P.loads.filter((x) => x !== a));
      if (r.chance(0.5)) {
        set64(a.off + 16, b.vaddr + BigInt(4096 * r.int(2)));
        what = 'overlap:vaddr';
      } else {
        out.copyWithin(a.off, b.off, b.off + PHDR);
        what = 'overlap:dup-phdr';
      }
      break;
    }
    case 'phswap': {
      if (P.phnum < 2) return null;
      const i = r.int(P.phnum),
        j = (i + 1 + r.int(P.phnum - 1)) % P.phnum;
      const a = P.phdrs[i].off,
        b = P.phdrs[j].off;
      const t = out.slice(a, a + PHDR);
      out.copyWithin(a, b, b + PHDR);
      out.set(t, b);
      what = 'phswap';
      break;
    }
    case 'notesz': {
      const nt = note();
      if (!nt) return null;
      const f = r.pick(['namesz', 'descsz', 'descsz']);
      const o = nt.off + (f === 'namesz' ? 0 : 4);
      const old = dv.getUint32(o, true);
      let v = r.weighted([
        [4, () => r.pick(U32)],
        [3, () => (old + r.pick([1, -1, 4, -4, 8])) >>> 0],
        [1, () => (size - nt.off) >>> 0],
      ])();
      if (v === old) v = (old + 4) >>> 0;
      dv.setUint32(o, v, true);
      what = `note.${f}`;
      break;
    }
    case 'notetype': {
      const nt = note();
      if (!nt) return null;
      dv.setUint32(nt.off + 8, r.pick(NOTE_TYPES.filter((t) => t !== nt.type)), true);
      what = `note.type:${nt.type.toString(16)}`;
      break;
    }
    case 'notename': {
      const nt = note();
      if (!nt || nt.namesz < 4) return null;
      const name = r.pick(['LINUX\0', 'CORE\0', 'GNU\0', 'CORX\0']);
      for (let i = 0; i < Math.min(nt.namesz, name.length); i++) out[nt.nameOff + i] = name.charCodeAt(i);
      what = 'note.name';
      break;
    }
    case 'notedesc': {
      const nt = note();
      if (!nt || nt.descsz === 0) return null;
      const words = Math.floor(nt.descsz / 4);
      const at = nt.descOff + 4 * r.int(Math.max(1, words));
      if (at + 4 <= size) dv.setUint32(at, u32v(r, dv.getUint32(at, true), size), true);
      what = `note.desc:${nt.type.toString(16)}`;
      break;
    }
    case 'ntfile': {
      const nt = P.notes.find((n) => n.type === 0x46494c45);
      if (!nt || nt.descsz < 16) return null;
      const f = r.pick(['count', 'pagesize', 'start', 'end', 'fileofs', 'name']);
      const count = Number(dv.getBigUint64(nt.descOff, true));
      const e = nt.descOff + 16 + 24 * r.int(Math.max(1, count));
      if (f === 'count') set64(nt.descOff, u64v(r, BigInt(count), size));
      else if (f === 'pagesize') set64(nt.descOff + 8, r.pick([0n, 1n, 4095n, 4096n, 8192n, 0xffffffffffffffffn]));
      else if (f === 'name') {
        const nm = nt.descOff + 16 + 24 * count;
        if (nm < nt.descOff + nt.descsz) out.fill(0x41, nm, nt.descOff + nt.descsz);
      } else if (count > 0 && e + 24 <= nt.descOff + nt.descsz) {
        const o = e + { start: 0, end: 8, fileofs: 16 }[f];
        set64(o, u64v(r, dv.getBigUint64(o, true), size));
      } else return null;
      what = `ntfile.${f}`;
      break;
    }
  }
  if (Buffer.from(out.buffer).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length))) return null;
  return { base, bytes: out, op: `elf:${what}`, level: 'raw', fixIndex: false };
}

/** A mutant, retrying when an operation does not apply to the base drawn. */
export function elfMutant(ectx, seed, iteration) {
  for (let a = 0; a < 20; a++) {
    const m = mutateElf(ectx, seed, iteration, a);
    if (m) return m;
  }
  const { bytes } = ectx.bases[0];
  return { base: 0, bytes: bytes.slice(0, bytes.length - 1), op: 'elf:truncate:last', level: 'raw', fixIndex: false };
}
