// The bench's ceiling kernel: one read-only SIMD pass over [ptr, ptr + len).
// It does the least any single-pass kernel must do (load every byte once) and
// keeps four independent v128 XOR chains so that loads, not the ALU, bound it.
// Compiled by bench/lib/kernels.mjs with --importMemory: it runs over crimg's
// own WebAssembly memory, on exactly the bytes the kernels under test read.

/** XOR-fold of every 16-byte lane of [ptr, ptr + len); len is rounded down to 128. */
export function read_pass(ptr: usize, len: usize): u64 {
  let a = i64x2.splat(0);
  let b = a, c = a, d = a;
  const end = ptr + (len & ~(<usize>127));
  while (ptr < end) {
    a = v128.xor(a, v128.xor(v128.load(ptr), v128.load(ptr, 64)));
    b = v128.xor(b, v128.xor(v128.load(ptr, 16), v128.load(ptr, 80)));
    c = v128.xor(c, v128.xor(v128.load(ptr, 32), v128.load(ptr, 96)));
    d = v128.xor(d, v128.xor(v128.load(ptr, 48), v128.load(ptr, 112)));
    ptr += 128;
  }
  const x = v128.xor(v128.xor(a, b), v128.xor(c, d));
  return i64x2.extract_lane(x, 0) ^ i64x2.extract_lane(x, 1);
}
