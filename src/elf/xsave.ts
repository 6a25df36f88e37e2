/**
 * XSAVE in ELF cores: the NT_X86_XSAVE_LAYOUT note Linux 6.11+ writes (the offsets of the components in the
 * core's NT_X86_XSTATE), and the NT_X86_XSTATE note crimg writes for gdb, which up to version 13 assumes the Intel
 * offsets and a size that depends on XCR0 only. The layouts themselves are src/cpu/xsave.ts.
 */
import { CrimgError } from '../errors.js';
import {
  GDB_XCR0_MASK,
  XCR0_X87_SSE,
  XSAVE_LEGACY_BYTES,
  XSAVE_MIN_BYTES,
  XSTATE_XCR0_OFFSET,
  type XsaveComponent,
  guessLayout,
  toIntelExt,
} from '../cpu/xsave.js';

/** Parse an NT_X86_XSAVE_LAYOUT descriptor: entries of {u32 type, u32 size, u32 offset, u32 flags}. */
export function parseLayoutNote(desc: Uint8Array, at: number): XsaveComponent[] {
  if (desc.length % 16)
    throw new CrimgError('BAD_CORE', `NT_X86_XSAVE_LAYOUT of ${desc.length} bytes is not a multiple of 16`, { offset: at });
  const dv = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  const out: XsaveComponent[] = [];
  for (let o = 0; o < desc.length; o += 16) {
    const c = { type: dv.getUint32(o, true), size: dv.getUint32(o + 4, true), offset: dv.getUint32(o + 8, true) };
    if (c.type > 63 || c.offset < XSAVE_MIN_BYTES || c.size === 0 || c.offset + c.size > 1 << 20) {
      throw new CrimgError(
        'BAD_CORE',
        `NT_X86_XSAVE_LAYOUT entry ${o / 16} (component ${c.type}, ${c.size} bytes at ${c.offset}) is invalid`,
        { offset: at + o },
      );
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
  if (xcr0 === 0n && ext.length >= 8) xcr0 = new DataView(ext.buffer, ext.byteOffset, 8).getBigUint64(0, true) | XCR0_X87_SSE;
  xcr0 = (xcr0 | XCR0_X87_SSE) & GDB_XCR0_MASK;
  const from = guessLayout(xcr0In === 0n ? xcr0 : xcr0In, srcArea.length);
  const outExt = toIntelExt(srcArea, xcr0, from);
  const bytes = new Uint8Array(XSAVE_LEGACY_BYTES + outExt.length);
  bytes.set(fpu.subarray(0, XSAVE_LEGACY_BYTES));
  bytes.fill(0, XSTATE_XCR0_OFFSET, XSAVE_LEGACY_BYTES);
  new DataView(bytes.buffer).setBigUint64(XSTATE_XCR0_OFFSET, xcr0, true);
  bytes.set(outExt, XSAVE_LEGACY_BYTES);
  return { xcr0, bytes };
}
