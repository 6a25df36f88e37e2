/**
 * The x86_64 XSAVE area, in one place: its components, their offsets in the standard (non-compacted) form of the
 * Intel SDM and of AMD Zen 4 (packed), the compacted form, the XCR0 bits crimg knows, and the conversions between
 * them. (The AssemblyScript kernel assembly/regs.ts keeps its own copy of the table, as it cannot import this
 * file; its TypeScript twin src/kernels/twin/regs.ts uses this one, and test/regs-kernel.test.ts checks the two
 * kernels against each other.)
 *
 * An XSAVE area: the 512-byte legacy region (the FXSAVE image; its software-reserved bytes 464..511 carry XCR0 at
 * 464 in what ptrace's NT_X86_XSTATE and ELF cores hold), the 64-byte XSAVE header at 512 (XSTATE_BV, XCOMP_BV,
 * reserved), then the extended user components. In the standard form each component sits at the offset CPUID leaf
 * 0xD reports: Intel CPUs use the offsets of the SDM (AVX at 576, MPX at 960, AVX-512 at 1088/1152/1664, PKRU at
 * 2688, AMX at 2752/2816); AMD Zen 4 and later omit MPX and pack the rest (opmask at 832, ZMM_Hi256 at 896,
 * Hi16_ZMM at 1408, PKRU at 2432). In the compacted form (XCOMP_BV bit 63) the components of XCOMP_BV follow one
 * another from 576, some aligned to 64 bytes.
 *
 * crimg's model keeps Thread.xstate.ext in the Intel layout (the size follows from XCR0), converting on the way in
 * (a live dump, a core made on another CPU) and on the way out (restore onto this CPU).
 */

export interface XsaveComponent {
  type: number;
  size: number;
  offset: number;
}

/** A user-state component crimg knows: its XCR0 bit (type), architectural size, Intel standard-form offset, and
 *  whether the compacted form aligns it to 64 bytes. */
export interface XsaveComponentInfo extends XsaveComponent {
  name: string;
  align64: boolean;
}

/** The user-state components of the Intel SDM layout, by XCR0 bit. */
export const XSAVE_COMPONENTS: readonly XsaveComponentInfo[] = [
  { type: 2, offset: 576, size: 256, align64: false, name: 'AVX: YMM_Hi128' },
  { type: 3, offset: 960, size: 64, align64: false, name: 'MPX: BNDREGS' },
  { type: 4, offset: 1024, size: 64, align64: false, name: 'MPX: BNDCSR' },
  { type: 5, offset: 1088, size: 64, align64: false, name: 'AVX-512: opmask' },
  { type: 6, offset: 1152, size: 512, align64: false, name: 'AVX-512: ZMM_Hi256' },
  { type: 7, offset: 1664, size: 1024, align64: false, name: 'AVX-512: Hi16_ZMM' },
  { type: 9, offset: 2688, size: 8, align64: false, name: 'PKRU' },
  { type: 17, offset: 2752, size: 64, align64: true, name: 'AMX: XTILECFG' },
  { type: 18, offset: 2816, size: 8192, align64: true, name: 'AMX: XTILEDATA' },
];
/** The same, by XCR0 bit. */
export const XSAVE_BY_BIT: ReadonlyMap<number, XsaveComponentInfo> = new Map(XSAVE_COMPONENTS.map((c) => [c.type, c]));

export const XSAVE_LEGACY_BYTES = 512;
export const XSAVE_HEADER_BYTES = 64;
/** The legacy region and the header: the smallest XSAVE area, and where the extended components begin. */
export const XSAVE_MIN_BYTES = XSAVE_LEGACY_BYTES + XSAVE_HEADER_BYTES;
/** XCR0 in the software-reserved bytes of the legacy region (ptrace's NT_X86_XSTATE, ELF cores). */
export const XSTATE_XCR0_OFFSET = 464;
/** XSTATE_BV (which components hold state) and XCOMP_BV (compacted form: bit 63 and the components present). */
export const XSTATE_BV_OFFSET = XSAVE_LEGACY_BYTES;
export const XCOMP_BV_OFFSET = XSAVE_LEGACY_BYTES + 8;
export const XCOMP_BV_COMPACTED = 1n << 63n;

/** XCR0 bits: x87 and SSE (always on; their state is the legacy region), AMX tile data (needs a permission). */
export const XCR0_X87_SSE = 3n;
export const XCR0_AMX_TILEDATA = 1n << 18n;
/** Every XCR0 bit crimg knows: x87, SSE and the components above. */
export const XCR0_KNOWN = XSAVE_COMPONENTS.reduce((m, c) => m | (1n << BigInt(c.type)), XCR0_X87_SSE);
/** XCR0 bits gdb (through version 13) knows: x87, SSE, AVX, MPX, AVX-512, PKRU. */
export const GDB_XCR0_MASK = 0x2ffn;

const has = (xcr0: bigint, bit: number): boolean => ((xcr0 >> BigInt(bit)) & 1n) === 1n;
const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Size of the Intel standard-form XSAVE area for the components of xcr0. */
export function intelXsaveSize(xcr0: bigint): number {
  let end = XSAVE_MIN_BYTES;
  for (const c of XSAVE_COMPONENTS) if (has(xcr0, c.type)) end = Math.max(end, c.offset + c.size);
  return end;
}

/** The Intel layout restricted to the components of xcr0. */
export function intelLayout(xcr0: bigint): XsaveComponent[] {
  return XSAVE_COMPONENTS.filter((c) => has(xcr0, c.type));
}

/** The packed layout (AMD Zen 4 style): enabled components in order, without gaps, from 576 on. */
export function packedLayout(xcr0: bigint): XsaveComponent[] {
  let at = XSAVE_MIN_BYTES;
  const out: XsaveComponent[] = [];
  for (const c of XSAVE_COMPONENTS) {
    if (!has(xcr0, c.type)) continue;
    out.push({ type: c.type, size: c.size, offset: at });
    at += c.size;
  }
  return out;
}

function layoutEnd(l: readonly XsaveComponent[]): number {
  return l.reduce((m, c) => Math.max(m, c.offset + c.size), XSAVE_MIN_BYTES);
}

/**
 * The layout of an XSAVE area of `size` bytes for xcr0: the explicit one if given,
 * else Intel when the size fits it, else packed when the size is exactly the packed
 * size, else Intel (components past the end read as absent).
 */
export function guessLayout(xcr0: bigint, size: number, explicit?: readonly XsaveComponent[] | null): readonly XsaveComponent[] {
  if (explicit?.length) return explicit;
  if (size >= intelXsaveSize(xcr0)) return intelLayout(xcr0);
  const packed = packedLayout(xcr0);
  if (size === layoutEnd(packed)) return packed;
  return intelLayout(xcr0);
}

/** XCR0 in bytes 464..471 of an XSAVE area (what the kernel and cores put there). */
export function xstateXcr0(area: Uint8Array): bigint {
  return view(area).getBigUint64(XSTATE_XCR0_OFFSET, true);
}

/** XSTATE_BV of the model's extended state (its bytes from offset 512 on; 0 when too short). */
export function extXstateBv(ext: Uint8Array): bigint {
  return ext.length < 8 ? 0n : view(ext).getBigUint64(0, true);
}

/** XCOMP_BV bit 63: the area is in compacted form (never the case in a core). */
export function isCompacted(area: Uint8Array): boolean {
  if (area.length < XSAVE_MIN_BYTES) return false;
  return (area[XCOMP_BV_OFFSET + 7]! & 0x80) !== 0;
}

/**
 * Convert an XSAVE area (whole, legacy region included) from layout `from` to the
 * Intel layout for `xcr0`. Returns the bytes from offset 512 on (header + components),
 * intelXsaveSize(xcr0) - 512 bytes long, with XCOMP_BV cleared and XSTATE_BV limited
 * to xcr0 and to the components that were present in the source.
 */
export function toIntelExt(area: Uint8Array, xcr0: bigint, from: readonly XsaveComponent[]): Uint8Array {
  const size = intelXsaveSize(xcr0);
  const out = new Uint8Array(size - XSAVE_LEGACY_BYTES);
  if (area.length < XSAVE_MIN_BYTES) return out;
  let bv = view(area).getBigUint64(XSTATE_BV_OFFSET, true) & xcr0;
  out.set(area.subarray(XSAVE_LEGACY_BYTES + 16, XSAVE_MIN_BYTES), 16); // reserved header bytes
  for (const c of intelLayout(xcr0)) {
    const src = from.find((s) => s.type === c.type);
    if (!src || src.offset + Math.min(src.size, c.size) > area.length) {
      bv &= ~(1n << BigInt(c.type));
      continue;
    }
    out.set(area.subarray(src.offset, src.offset + Math.min(src.size, c.size)), c.offset - XSAVE_LEGACY_BYTES);
  }
  const odv = view(out);
  odv.setBigUint64(0, bv, true);
  odv.setBigUint64(8, 0n, true);
  return out;
}

/**
 * Fill the header and extended components of `out`, a standard-form area laid out as `to` (its legacy region is
 * the caller's), from `ext`, the model's extended state in the Intel layout for `extXcr0`. XSTATE_BV becomes the
 * components ext holds that `outXcr0` enables and `to` has room for, plus x87 and SSE (in the legacy region);
 * XCOMP_BV 0 (standard form); the reserved header bytes 0. Without ext (too short) only x87 and SSE are marked.
 */
export function fromIntelExt(
  out: Uint8Array,
  to: readonly XsaveComponent[],
  outXcr0: bigint,
  ext: Uint8Array | null,
  extXcr0: bigint,
): void {
  const dv = view(out);
  let bv = XCR0_X87_SSE;
  if (ext && ext.length >= XSAVE_HEADER_BYTES) {
    const extBv = extXstateBv(ext);
    const xcr0 = extXcr0 !== 0n ? extXcr0 : extBv | XCR0_X87_SSE;
    bv = (extBv & outXcr0) | (extBv & XCR0_X87_SSE);
    const from = intelLayout(xcr0);
    for (const c of to) {
      const bit = 1n << BigInt(c.type);
      if (!(bv & bit)) continue;
      const s = from.find((x) => x.type === c.type);
      const so = s ? s.offset - XSAVE_LEGACY_BYTES : -1;
      if (!s || so + s.size > ext.length || c.offset + c.size > out.length) {
        bv &= ~bit;
        continue;
      }
      out.set(ext.subarray(so, so + Math.min(s.size, c.size)), c.offset);
    }
    out.fill(0, XSAVE_LEGACY_BYTES + 16, XSAVE_MIN_BYTES); // reserved header bytes must be zero
  }
  dv.setBigUint64(XSTATE_BV_OFFSET, bv, true);
  dv.setBigUint64(XCOMP_BV_OFFSET, 0n, true); // standard form
}
