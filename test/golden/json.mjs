// The canonical JSON of a decoded model for the golden images: keys sorted, bigints as decimal strings with an n,
// byte arrays as hex, each VMA's pages as its present runs and the SHA-256 of its bytes (absent pages as zero).
import { createHash } from 'node:crypto';

function vmaPages(v, img) {
  const n = Number((v.end - v.start) / 4096n);
  const runs = [...v.pages.runs(n)];
  const h = createHash('sha256');
  for (const [first, count] of runs) {
    h.update(String(first));
    h.update(':');
    h.update(String(count));
    h.update(';');
    for (let p = first; p < first + count; p++) h.update(pageAt(img, v, p));
  }
  return { runs, sha256: h.digest('hex') };
}
let pidOf = 0;
function pageAt(img, v, p) {
  return img.readMemory(pidOf, v.start + BigInt(p) * 4096n, 4096);
}

function canon(x, img) {
  if (typeof x === 'bigint') return `${x}n`;
  if (x instanceof Uint8Array) return { hex: Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex') };
  if (x instanceof BigUint64Array) return Array.from(x, (v) => `0x${v.toString(16)}`);
  if (Array.isArray(x)) return x.map((e) => canon(e, img));
  if (x && typeof x === 'object') {
    const out = {};
    for (const k of Object.keys(x).sort()) {
      if (x[k] === undefined) continue;
      if (k === 'pages' && 'end' in x && 'start' in x) {
        out[k] = vmaPages(x, img);
        continue;
      }
      out[k] = canon(x[k], img);
    }
    return out;
  }
  return x;
}

export function goldenJson(model, img) {
  const tasks = model.tasks.map((t) => {
    pidOf = t.pid;
    return canon(t, img);
  });
  return `${JSON.stringify({ header: canon(model.header, img), namespaces: canon(model.namespaces, img), tasks }, null, 1)}\n`;
}
