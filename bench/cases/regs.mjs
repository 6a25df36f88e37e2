// Register packing: crimg regs_pack (user_regs_struct + FXSAVE -> framed REGS and
// FPU records with checksums) against protobufjs encoding the messages CRIU stores
// for the same state (thread_info_x86 of images/core-x86.proto), and against plain
// DataView packing in JS.
import { randomFillSync } from 'node:crypto';
import protobuf from 'protobufjs';
import { xxh3 } from '@node-rs/xxhash';
import { runInProcess, summarize, evaluateGoals } from '../lib/harness.mjs';
import { crimgKernels, hasExports } from '../lib/kernels.mjs';

const N = 1024; // register sets per call (one per thread)
const RAW = 216 + 512; // user_regs_struct + FXSAVE
const REC = 16 + 216 + 16 + 512; // REGS record + FPU record

// The x86 part of CRIU's images/core-x86.proto (checkpoint-restore/criu), inline.
// Only CRIU's (criu).hex field options and the import of opts.proto that defines
// them are left out; they do not change the encoding.
const CRIU_CORE_X86 = `
syntax = "proto2";
enum user_x86_regs_mode { NATIVE = 1; COMPAT = 2; }
message user_x86_regs_entry {
  required uint64 r15 = 1;  required uint64 r14 = 2;  required uint64 r13 = 3;  required uint64 r12 = 4;
  required uint64 bp = 5;   required uint64 bx = 6;   required uint64 r11 = 7;  required uint64 r10 = 8;
  required uint64 r9 = 9;   required uint64 r8 = 10;  required uint64 ax = 11;  required uint64 cx = 12;
  required uint64 dx = 13;  required uint64 si = 14;  required uint64 di = 15;  required uint64 orig_ax = 16;
  required uint64 ip = 17;  required uint64 cs = 18;  required uint64 flags = 19; required uint64 sp = 20;
  required uint64 ss = 21;  required uint64 fs_base = 22; required uint64 gs_base = 23; required uint64 ds = 24;
  required uint64 es = 25;  required uint64 fs = 26;  required uint64 gs = 27;
  optional user_x86_regs_mode mode = 28 [default = NATIVE];
}
message user_x86_xsave_entry {
  required uint64 xstate_bv = 1;
  repeated uint32 ymmh_space = 2;
}
message user_x86_fpregs_entry {
  required uint32 cwd = 1;  required uint32 swd = 2;  required uint32 twd = 3;  required uint32 fop = 4;
  required uint64 rip = 5;  required uint64 rdp = 6;  required uint32 mxcsr = 7; required uint32 mxcsr_mask = 8;
  repeated uint32 st_space = 9;
  repeated uint32 xmm_space = 10;
  repeated uint32 padding = 11;
  optional user_x86_xsave_entry xsave = 13;
}
message user_desc_t {
  required uint32 entry_number = 1; required uint32 base_addr = 2; required uint32 limit = 3;
  required bool seg_32bit = 4; required bool contents_h = 5; required bool contents_l = 6;
  required bool read_exec_only = 7 [default = true]; required bool limit_in_pages = 8;
  required bool seg_not_present = 9 [default = true]; required bool useable = 10;
}
message thread_info_x86 {
  required uint64 clear_tid_addr = 1;
  required user_x86_regs_entry gpregs = 2;
  required user_x86_fpregs_entry fpregs = 3;
  repeated user_desc_t tls = 4;
}
`;

export const regsPack = {
  name: 'regs-pack',
  title: `register packing: ${N} sets of user_regs_struct + FXSAVE`,
  unit: 'sets/s',
  goalsText: '>= 10x protobufjs; >= 25 M sets/s',
  async run({ rounds }) {
    const k = await crimgKernels();
    if (!hasExports(k, 'regs_pack', 'regs_unpack'))
      return { available: false, reason: 'regs_pack/regs_unpack not in build/crimg.wasm yet' };
    const { K } = await import('../../dist/schema.js');
    const base = k.staging(N * (RAW + REC + REC + RAW) + 65536);
    const src = base; // N raw sets
    const dstC = src + N * RAW; // crimg's records
    const dstJ = dstC + N * REC; // the DataView packer's records
    const back = dstJ + N * REC; // regsUnpack output
    const mem = k.x.memory;
    const u8 = new Uint8Array(mem.buffer);
    const dv = new DataView(mem.buffer);
    randomFillSync(u8, src, N * RAW);

    // ---- plain JS: DataView framing, fields copied one by one
    const hdr = (o, kind, len) => {
      dv.setUint16(o, kind, true);
      dv.setUint16(o + 2, 0, true);
      dv.setUint32(o + 4, len, true);
    };
    const packFields = (i) => {
      const s = src + i * RAW,
        d = dstJ + i * REC;
      hdr(d, K.REGS, 216);
      for (let j = 0; j < 54; j++) dv.setUint32(d + 16 + 4 * j, dv.getUint32(s + 4 * j, true), true);
      hdr(d + 232, K.FPU, 512);
      u8.copyWithin(d + 248, s + 216, s + RAW);
    };
    const h = xxh3.Xxh3.withSeed(0n);
    const views = Array.from({ length: N }, (_, i) => {
      const d = dstJ + i * REC;
      return [u8.subarray(d + 16, d + 232), u8.subarray(d, d + 8), u8.subarray(d + 248, d + 760), u8.subarray(d + 232, d + 240)];
    });
    const dataViewOnly = () => {
      for (let i = 0; i < N; i++) {
        packFields(i);
        dv.setBigUint64(dstJ + i * REC + 8, 0n, true);
        dv.setBigUint64(dstJ + i * REC + 240, 0n, true);
      }
    };
    const dataViewXxh3 = () => {
      for (let i = 0; i < N; i++) {
        packFields(i);
        const [rp, rh, fp, fh] = views[i];
        const d = dstJ + i * REC;
        h.reset();
        h.update(rp);
        h.update(rh);
        dv.setBigUint64(d + 8, h.digest(), true);
        h.reset();
        h.update(fp);
        h.update(fh);
        dv.setBigUint64(d + 240, h.digest(), true);
      }
    };

    // ---- protobufjs: CRIU's messages, built once from the raw sets (favourable to the peer)
    const root = protobuf.parse(CRIU_CORE_X86, { keepCase: true }).root;
    const TI = root.lookupType('thread_info_x86');
    const GP = root.lookupType('user_x86_regs_entry');
    const gpFields = GP.fieldsArray
      .filter((f) => f.id <= 27)
      .sort((a, b) => a.id - b.id)
      .map((f) => f.name);
    if (gpFields.length !== 27) throw new Error('user_x86_regs_entry should have 27 registers');
    const Long = protobuf.util.Long;
    const u64 = (o) => Long.fromBits(dv.getUint32(o, true), dv.getUint32(o + 4, true), true);
    const u32s = (o, n) => Array.from({ length: n }, (_, j) => dv.getUint32(o + 4 * j, true));
    const toMessage = (i) => {
      const s = src + i * RAW;
      const gpregs = {};
      gpFields.forEach((name, j) => {
        gpregs[name] = u64(s + 8 * j);
      }); // field j+1 = user_regs_struct word j
      const f = s + 216;
      const fpregs = {
        cwd: dv.getUint16(f, true),
        swd: dv.getUint16(f + 2, true),
        twd: dv.getUint16(f + 4, true),
        fop: dv.getUint16(f + 6, true),
        rip: u64(f + 8),
        rdp: u64(f + 16),
        mxcsr: dv.getUint32(f + 24, true),
        mxcsr_mask: dv.getUint32(f + 28, true),
        st_space: u32s(f + 32, 32),
        xmm_space: u32s(f + 160, 64),
        padding: u32s(f + 416, 24),
      };
      return { clear_tid_addr: Long.UZERO, gpregs, fpregs };
    };
    const messages = Array.from({ length: N }, (_, i) => toMessage(i));
    const encoded = new Array(N);
    const pbEncode = () => {
      for (let i = 0; i < N; i++) encoded[i] = TI.encode(messages[i]).finish();
    };
    const pbFromRaw = () => {
      for (let i = 0; i < N; i++) encoded[i] = TI.encode(toMessage(i)).finish();
    };

    const crimg = () => k.regsPack(src, N, dstC);
    // what the image writer does per thread: one regsPack1 call per set (user_regs_struct and FXSAVE
    // given apart), records placed at the writer's position, both headers fed to the image checksum
    const hasOne = typeof k.regsPack1 === 'function';
    const IMG_SLOT = 15;
    const perSet = () => {
      for (let i = 0; i < N; i++) k.regsPack1(src + i * RAW, src + i * RAW + 216, back + i * REC, IMG_SLOT);
    };
    const contenders = [
      { name: 'crimg regsPack', role: 'crimg', units: N, fn: crimg },
      { name: 'protobufjs encode (CRIU thread_info_x86, prebuilt messages)', role: 'peer', units: N, fn: pbEncode },
      { name: 'protobufjs raw bytes -> message -> encode', role: 'info', units: N, fn: pbFromRaw },
      { name: 'DataView packing + @node-rs xxh3 (same bytes)', role: 'peer', units: N, fn: dataViewXxh3 },
      { name: 'DataView packing, no checksums', role: 'info', units: N, fn: dataViewOnly },
    ];
    if (hasOne) contenders.push({ name: "crimg regsPack1, one call per set (the writer's path)", role: 'info', units: N, fn: perSet });

    // same answer: crimg's records = the JS packer's byte for byte; both round-trip to the input
    const checks = [];
    const n = crimg();
    checks.push({ what: `regsPack returns ${N * REC} bytes`, ok: n === N * REC, detail: `got ${n}` });
    dataViewXxh3();
    const same = Buffer.compare(Buffer.from(mem.buffer, dstC, N * REC), Buffer.from(mem.buffer, dstJ, N * REC)) === 0;
    checks.push({ what: 'regsPack records identical to DataView + @node-rs xxh3 records', ok: same });
    if (hasOne) {
      perSet();
      checks.push({
        what: "regsPack1 per set (the writer's path) = regsPack records",
        ok: Buffer.compare(Buffer.from(mem.buffer, back, N * REC), Buffer.from(mem.buffer, dstC, N * REC)) === 0,
      });
    }
    const bad = k.regsUnpack(dstC, N, back);
    const rt = bad === -1 && Buffer.compare(Buffer.from(mem.buffer, back, N * RAW), Buffer.from(mem.buffer, src, N * RAW)) === 0;
    checks.push({ what: 'regsUnpack(regsPack(x)) = x', ok: rt, detail: `regsUnpack returned ${bad}` });
    pbEncode();
    let pbOk = true;
    for (let i = 0; i < N && pbOk; i++) {
      const m = TI.toObject(TI.decode(encoded[i]), { longs: String });
      const want = toMessage(i);
      for (const name of gpFields) if (m.gpregs[name] !== want.gpregs[name].toString()) pbOk = false;
      for (const key of ['cwd', 'swd', 'twd', 'fop', 'mxcsr', 'mxcsr_mask']) if (m.fpregs[key] !== want.fpregs[key]) pbOk = false;
      if (m.fpregs.rip !== want.fpregs.rip.toString() || m.fpregs.rdp !== want.fpregs.rdp.toString()) pbOk = false;
      for (const key of ['st_space', 'xmm_space', 'padding']) if (m.fpregs[key].join() !== want.fpregs[key].join()) pbOk = false;
    }
    checks.push({ what: 'protobufjs messages decode back to the same registers and FXSAVE', ok: pbOk });
    if (checks.some((c) => !c.ok)) return { available: true, checks, checkFailed: 'packed registers differ' };
    const sizes = encoded.reduce((a, b) => a + b.length, 0) / N;

    const per = await runInProcess(contenders, { rounds });
    const { rows, ratios } = summarize(contenders, per, { primary: contenders[0].name });
    const goals = evaluateGoals(
      [
        { text: '>= 10x protobufjs', kind: 'ratio', vs: [contenders[1].name], atLeast: 10 },
        { text: '>= 25 M register sets/s', kind: 'abs', of: contenders[0].name, atLeast: 25e6 },
      ],
      rows,
      ratios,
    );
    return {
      available: true,
      checks,
      rows,
      ratios,
      goals,
      setup: `${N} random register sets (216-byte user_regs_struct + 512-byte FXSAVE) in WebAssembly memory. crimg writes ${REC}-byte REGS+FPU record pairs with XXH3 checksums; protobufjs encodes CRIU's thread_info_x86 (gpregs + fpregs, ${sizes.toFixed(0)} bytes per set on average, no checksum) from message objects built beforehand; the DataView packer writes the same bytes as crimg.`,
    };
  },
};
