// Lists the functions of src/ longer than a limit (default 100 lines), longest first, with their nesting depth.
// `node scripts/fn-length.mjs [--max N] [--json]`; exit 1 when one is longer. test/layout.test.ts runs it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const max = Number(args[args.indexOf('--max') + 1] ?? 100) || 100;

function files(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Functions (declarations, methods, arrows and expressions of more than one line) with their line counts. */
export function functionLengths(path) {
  const text = readFileSync(path, 'utf8');
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const out = [];
  const line = (pos) => sf.getLineAndCharacterOfPosition(pos).line;
  const depthOf = (node) => {
    let d = 0;
    const walk = (n, k) => {
      const nest = ts.isBlock(n) && n.parent && !ts.isFunctionLike(n.parent) ? k + 1 : k;
      d = Math.max(d, nest);
      ts.forEachChild(n, (c) => walk(c, nest));
    };
    walk(node, 0);
    return d;
  };
  const visit = (node, owner) => {
    if (ts.isFunctionLike(node) && node.body) {
      const name =
        node.name?.getText(sf)
        ?? (ts.isVariableDeclaration(node.parent)
          ? node.parent.name.getText(sf)
          : ts.isPropertyAssignment(node.parent)
            ? node.parent.name.getText(sf)
            : '(anonymous)');
      const lines = line(node.end) - line(node.getStart(sf)) + 1;
      out.push({
        file: relative(root, path),
        name: owner ? `${owner}.${name}` : name,
        line: line(node.getStart(sf)) + 1,
        lines,
        depth: depthOf(node.body),
      });
    }
    const cls = ts.isClassDeclaration(node) && node.name ? node.name.getText(sf) : owner;
    ts.forEachChild(node, (c) => visit(c, cls));
  };
  visit(sf, '');
  return out;
}

export function longFunctions(limit = max) {
  return files(join(root, 'src'))
    .flatMap(functionLengths)
    .filter((f) => f.lines > limit)
    .sort((a, b) => b.lines - a.lines);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const long = longFunctions();
  if (args.includes('--json')) console.log(JSON.stringify(long, null, 1));
  else for (const f of long) console.log(`${String(f.lines).padStart(4)} lines  depth ${f.depth}  ${f.file}:${f.line}  ${f.name}`);
  process.exit(long.length ? 1 : 0);
}
