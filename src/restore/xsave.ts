/**
 * The NT_X86_XSTATE buffer PTRACE_SETREGSET takes: a whole standard-form XSAVE
 * area of exactly the size the kernel reports for this CPU, in this CPU's
 * layout. The image keeps the legacy region as the thread's FXSAVE area and the
 * rest in the Intel layout (see src/elf/xsave.ts); components move to the host's
 * offsets here.
 */
import type { Thread } from '../model.js';
import { XSAVE_LEGACY_BYTES, XSAVE_MIN_BYTES, guessLayout, intelLayout } from '../elf/xsave.js';

/** XCR0 the kernel reports in bytes 464..471 of an NT_X86_XSTATE buffer. */
export function xstateXcr0(buf: Uint8Array): bigint {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(464, true);
}

/** XSTATE_BV of the image's extended state (0 when absent). */
export function imageXstateBv(th: Thread): bigint {
  if (!th.xstate || th.xstate.ext.length < 8) return 0n;
  return new DataView(th.xstate.ext.buffer, th.xstate.ext.byteOffset, 8).getBigUint64(0, true);
}

/**
 * Build the SETREGSET buffer for thread `th` from `host`, a buffer the kernel returned for a thread of this
 * machine (its size and its software bytes 464..511 are kept).
 */
export function buildXstate(host: Uint8Array, th: Thread): Uint8Array {
  const size = host.length;
  const hostXcr0 = xstateXcr0(host);
  const out = new Uint8Array(size);
  out.set(th.fpu.subarray(0, 464), 0);
  out.set(host.subarray(464, XSAVE_LEGACY_BYTES), 464);
  const dv = new DataView(out.buffer);
  let bv = 3n; // x87 + SSE from the FXSAVE area
  if (th.xstate && th.xstate.ext.length >= 64) {
    const ext = th.xstate.ext;
    const imgBv = imageXstateBv(th);
    const imgXcr0 = th.xstate.xcr0 !== 0n ? th.xstate.xcr0 : imgBv | 3n;
    bv = (imgBv & hostXcr0) | (imgBv & 3n);
    const from = intelLayout(imgXcr0);
    const to = guessLayout(hostXcr0, size);
    for (const c of to) {
      const bit = 1n << BigInt(c.type);
      if (!(bv & bit)) continue;
      const s = from.find((x) => x.type === c.type);
      const so = s ? s.offset - XSAVE_LEGACY_BYTES : -1;
      if (!s || so + s.size > ext.length || c.offset + c.size > size) { bv &= ~bit; continue; }
      out.set(ext.subarray(so, so + Math.min(s.size, c.size)), c.offset);
    }
    out.fill(0, XSAVE_LEGACY_BYTES + 16, XSAVE_MIN_BYTES); // reserved header bytes must be zero
  }
  dv.setBigUint64(XSAVE_LEGACY_BYTES, bv, true);
  dv.setBigUint64(XSAVE_LEGACY_BYTES + 8, 0n, true); // XCOMP_BV: standard form
  return out;
}
