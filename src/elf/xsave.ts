/**
 * XSAVE layouts for ELF cores.
 *
 * An NT_X86_XSTATE note holds a whole XSAVE area in standard (non-compacted)
 * form: the 512-byte legacy region, the 64-byte XSAVE header at 512, then the
 * extended user components at the offsets CPUID leaf 0xD reports. Intel CPUs use
 * the offsets of the SDM (AVX at 576, MPX at 960, AVX-512 at 1088/1152/1664, PKRU
 * at 2688); AMD Zen 4 and later omit MPX and pack the rest (opmask at 832,
 * ZMM_Hi256 at 896, Hi16_ZMM at 1408, PKRU at 2432). Linux 6.11+ describes the
 * layout in an NT_X86_XSAVE_LAYOUT note; gdb up to 13 assumes the Intel offsets and
 * a size that depends on XCR0 only.
 *
 * crimg keeps Thread.xstate.ext in the Intel layout (the size follows from XCR0),
 * converting on import when a core says (or its size shows) that it uses another one.
 */
import { CrimgError } from '../errors.js';

export interface XsaveComponent { type: number; size: number; offset: number }

/** The user-state components of the Intel SDM layout, by XCR0 bit. */
export const INTEL_COMPONENTS: readonly XsaveComponent[] = [
  { type: 2, offset: 576, size: 256 }, // AVX: YMM_Hi128
  { type: 3, offset: 960, size: 64 }, // MPX: BNDREGS
  { type: 4, offset: 1024, size: 64 }, // MPX: BNDCSR
  { type: 5, offset: 1088, size: 64 }, // AVX-512: opmask
  { type: 6, offset: 1152, size: 512 }, // AVX-512: ZMM_Hi256
  { type: 7, offset: 1664, size: 1024 }, // AVX-512: Hi16_ZMM
  { type: 9, offset: 2688, size: 8 }, // PKRU
  { type: 17, offset: 2752, size: 64 }, // AMX: XTILECFG
  { type: 18, offset: 2816, size: 8192 }, // AMX: XTILEDATA
];

export const XSAVE_LEGACY_BYTES = 512;
export const XSAVE_HEADER_BYTES = 64;
export const XSAVE_MIN_BYTES = XSAVE_LEGACY_BYTES + XSAVE_HEADER_BYTES;
/** XCR0 bits gdb (through version 13) knows: x87, SSE, AVX, MPX, AVX-512, PKRU. */
export const GDB_XCR0_MASK = 0x2ffn;

const has = (xcr0: bigint, bit: number): boolean => ((xcr0 >> BigInt(bit)) & 1n) === 1n;

/** Size of the Intel standard-form XSAVE area for the components of xcr0. */
export function intelXsaveSize(xcr0: bigint): number {
  let end = XSAVE_MIN_BYTES;
  for (const c of INTEL_COMPONENTS) if (has(xcr0, c.type)) end = Math.max(end, c.offset + c.size);
  return end;
}

/** The Intel layout restricted to the components of xcr0. */
export function intelLayout(xcr0: bigint): XsaveComponent[] {
  return INTEL_COMPONENTS.filter((c) => has(xcr0, c.type));
}

/** The packed layout (AMD Zen 4 style): enabled components in order, without gaps, from 576 on. */
export function packedLayout(xcr0: bigint): XsaveComponent[] {
  let at = XSAVE_MIN_BYTES;
  const out: XsaveComponent[] = [];
  for (const c of INTEL_COMPONENTS) {
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
  if (explicit && explicit.length) return explicit;
  if (size >= intelXsaveSize(xcr0)) return intelLayout(xcr0);
  const packed = packedLayout(xcr0);
  if (size === layoutEnd(packed)) return packed;
  return intelLayout(xcr0);
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
  const dv = new DataView(area.buffer, area.byteOffset, area.byteLength);
  let bv = dv.getBigUint64(512, true) & xcr0;
  out.set(area.subarray(512 + 16, XSAVE_MIN_BYTES), 16); // reserved header bytes
  for (const c of intelLayout(xcr0)) {
    const src = from.find((s) => s.type === c.type);
    if (!src || src.offset + Math.min(src.size, c.size) > area.length) {
      bv &= ~(1n << BigInt(c.type));
      continue;
    }
    out.set(area.subarray(src.offset, src.offset + Math.min(src.size, c.size)), c.offset - XSAVE_LEGACY_BYTES);
  }
  const odv = new DataView(out.buffer);
  odv.setBigUint64(0, bv, true);
  odv.setBigUint64(8, 0n, true);
  return out;
}

/** XCOMP_BV bit 63: the area is in compacted form (never the case in a core). */
export function isCompacted(area: Uint8Array): boolean {
  if (area.length < XSAVE_MIN_BYTES) return false;
  return (area[512 + 15]! & 0x80) !== 0;
}

/** Parse an NT_X86_XSAVE_LAYOUT descriptor: entries of {u32 type, u32 size, u32 offset, u32 flags}. */
export function parseLayoutNote(desc: Uint8Array, at: number): XsaveComponent[] {
  if (desc.length % 16) throw new CrimgError('BAD_CORE', `NT_X86_XSAVE_LAYOUT of ${desc.length} bytes is not a multiple of 16`, { offset: at });
  const dv = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  const out: XsaveComponent[] = [];
  for (let o = 0; o < desc.length; o += 16) {
    const c = { type: dv.getUint32(o, true), size: dv.getUint32(o + 4, true), offset: dv.getUint32(o + 8, true) };
    if (c.type > 63 || c.offset < XSAVE_MIN_BYTES || c.size === 0 || c.offset + c.size > 1 << 20) {
      throw new CrimgError('BAD_CORE', `NT_X86_XSAVE_LAYOUT entry ${o / 16} (component ${c.type}, ${c.size} bytes at ${c.offset}) is invalid`, { offset: at + o });
    }
    out.push(c);
  }
  return out;
}

/**
 * The NT_X86_XSTATE descriptor crimg writes: Intel layout for the components of
 * xcr0 that gdb knows, with XCR0 at bytes 464..471. `fpu` fills the legacy region.
 */
export function gdbXstateNote(fpu: Uint8Array, xcr0In: bigint, ext: Uint8Array): { xcr0: bigint; bytes: Uint8Array } {
  // Source: the model's area (legacy region from fpu, then ext); its layout follows from its size.
  const srcArea = new Uint8Array(XSAVE_LEGACY_BYTES + ext.length);
  srcArea.set(fpu.subarray(0, XSAVE_LEGACY_BYTES));
  srcArea.set(ext, XSAVE_LEGACY_BYTES);
  let xcr0 = xcr0In;
  if (xcr0 === 0n && ext.length >= 8) xcr0 = new DataView(ext.buffer, ext.byteOffset, 8).getBigUint64(0, true) | 3n;
  xcr0 = (xcr0 | 3n) & GDB_XCR0_MASK;
  const from = guessLayout(xcr0In === 0n ? xcr0 : xcr0In, srcArea.length);
  const outExt = toIntelExt(srcArea, xcr0, from);
  const bytes = new Uint8Array(XSAVE_LEGACY_BYTES + outExt.length);
  bytes.set(fpu.subarray(0, XSAVE_LEGACY_BYTES));
  bytes.fill(0, 464, 512);
  new DataView(bytes.buffer).setBigUint64(464, xcr0, true);
  bytes.set(outExt, XSAVE_LEGACY_BYTES);
  return { xcr0, bytes };
}
