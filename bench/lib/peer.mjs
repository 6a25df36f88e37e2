// A long-lived peer process for the in-memory limits of whole-command cases
// (Buffer.copy of 1 GiB, write() of a prepared buffer). It holds the big buffers
// and never forks: on this VM a page fault costs tens of microseconds and every
// fork write-protects the parent's pages, so buffers kept in the bench process
// itself (which spawns crimg) would be re-faulted inside the peer's timing.
//
// Parent side: `const p = await Peer.start()`, `await p.call({ op, ... })`.
// Child side (this file run as a script): JSON requests on stdin, one per line;
// one JSON reply per request on stdout.
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const MiB = 1024 * 1024;

export class Peer {
  static start() {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { stdio: ['pipe', 'pipe', 'inherit'] });
    return new Peer(child);
  }

  constructor(child) {
    this.child = child;
    this.waiting = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      const w = this.waiting.shift();
      const r = JSON.parse(line);
      if (r.error) w?.reject(new Error(`peer: ${r.error}`));
      else w?.resolve(r);
    });
    child.on('exit', (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`peer exited ${code}`));
    });
  }

  call(req) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(`${JSON.stringify(req)}\n`);
    });
  }

  close() {
    this.child.stdin.end();
    this.child.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------ child side

function timed(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function serve() {
  let src;
  let dst;
  let img;
  const ops = {
    /** Two prefaulted buffers of `bytes`; src filled with a pattern. */
    alloc({ bytes }) {
      src = Buffer.alloc(bytes);
      for (let o = 0; o < bytes; o += 4096) src.writeUInt32LE((o / 4096) ^ 0x5a5a5a5a, o);
      dst = Buffer.alloc(bytes, 1);
      src.copy(dst);
      return { ok: src.equals(dst) };
    },
    copy() {
      return { seconds: timed(() => src.copy(dst)) };
    },
    equal() {
      return { ok: src.equals(dst) };
    },
    /** Read a file into the prepared buffer. */
    load({ file }) {
      img = fs.readFileSync(file);
      return { bytes: img.length };
    },
    /** Create `file` and write the prepared buffer to it (256 MiB write() calls). */
    write({ file }) {
      return {
        seconds: timed(() => {
          const fd = fs.openSync(file, 'wx', 0o644);
          try {
            let off = 0;
            while (off < img.length) off += fs.writeSync(fd, img, off, Math.min(img.length - off, 256 * MiB));
          } finally {
            fs.closeSync(fd);
          }
        }),
      };
    },
    free() {
      src = dst = img = undefined;
      return { ok: true };
    },
  };
  createInterface({ input: process.stdin }).on('line', (line) => {
    let reply;
    try {
      const req = JSON.parse(line);
      reply = ops[req.op](req);
    } catch (e) {
      reply = { error: String(e?.message ?? e) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve();
