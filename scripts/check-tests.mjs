#!/usr/bin/env node
// A self-check of the test suite, run by `pnpm test` before the tests: fails when a test cannot fail.
// - a test (`it(`, `test(`, `it.each(…)(`) whose body has no `expect(` nor an assertion helper;
// - `.toBeDefined()` on a caught error (`.catch((e) => e)).toBeDefined()`, `expect(err).toBeDefined()`),
//   which passes whatever was thrown, or when nothing was.
// Usage: node scripts/check-tests.mjs [files…] (default: every *.test.ts of the workspace).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

/**
 * Calls that assert: expect, the helpers that wrap it (`expectCode`, `expectError`) and node:assert. A
 * wait (`waitFor`, `until`) alone does not count: it says that something happened, not what it was.
 */
const ASSERTS = /\b(expect|expectCode|expectError|assert[A-Za-z]*)\s*[(.<]/;

function testFiles() {
  const out = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.test.ts')) out.push(p);
    }
  };
  for (const d of ['packages', 'services', 'tests', 'examples', 'bench']) walk(join(root, d));
  return out;
}

/** The source with strings, template literals and comments blanked (same length), so brackets match. */
function blank(src) {
  let out = '';
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    const next = src[i + 1];
    if (c === '/' && next === '/') {
      while (i < n && src[i] !== '\n') {
        out += ' ';
        i++;
      }
    } else if (c === '/' && next === '*') {
      while (i < n && !(src[i] === '*' && src[i + 1] === '/')) {
        out += src[i] === '\n' ? '\n' : ' ';
        i++;
      }
      out += '  ';
      i += 2;
    } else if (c === "'" || c === '"' || c === '`') {
      out += c;
      i++;
      let depth = 0;
      while (i < n) {
        if (src[i] === '\\') {
          out += '  ';
          i += 2;
          continue;
        }
        if (c === '`' && src[i] === '$' && src[i + 1] === '{') depth++;
        else if (c === '`' && depth > 0 && src[i] === '}') depth--;
        else if (src[i] === c && depth === 0) break;
        out += src[i] === '\n' ? '\n' : ' ';
        i++;
      }
      out += c;
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Index of the bracket that closes the one at `open`, in blanked source. */
function closing(code, open) {
  const pairs = { '(': ')', '[': ']', '{': '}' };
  const stack = [];
  for (let i = open; i < code.length; i++) {
    const ch = code[i];
    if (pairs[ch]) stack.push(pairs[ch]);
    else if (ch === ')' || ch === ']' || ch === '}') {
      if (stack.pop() !== ch) return -1;
      if (stack.length === 0) return i;
    }
  }
  return -1;
}

const lineOf = (src, index) => src.slice(0, index).split('\n').length;

export function checkSource(src) {
  const problems = [];
  const code = blank(src);
  // it( / test( / it.each(...)( / it.concurrent( … but not it.skip / it.todo (those the runner reports)
  const start = /(?<![\w.])(it|test)(\.only|\.concurrent|\.each\s*(?=\())?\s*\(/g;
  for (let m = start.exec(code); m; m = start.exec(code)) {
    let open = m.index + m[0].length - 1;
    if (m[2]?.startsWith('.each')) {
      // it.each(table)(name, fn): the test is the second call
      const end = closing(code, open);
      if (end < 0) continue;
      const rest = code.slice(end + 1);
      const call = /^\s*\(/.exec(rest);
      if (!call) continue;
      open = end + 1 + call[0].length - 1;
    }
    const end = closing(code, open);
    if (end < 0) continue;
    const body = src.slice(open, end + 1);
    if (!ASSERTS.test(blank(body).replace(/^\(\s*[^,]*,/, '(')))
      problems.push({ line: lineOf(src, m.index), what: 'a test with no expect() or assertion helper' });
  }
  const lines = src.split('\n');
  lines.forEach((line, i) => {
    if (!line.includes('.toBeDefined()')) return;
    if (
      /\.catch\(/.test(line) ||
      /expect\(\s*(err|error|e|caught|failure)\b[^)]*\)\.toBeDefined\(\)/.test(line)
    )
      problems.push({ line: i + 1, what: '.toBeDefined() on a caught error passes whatever was thrown' });
  });
  return problems;
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const files = process.argv.length > 2 ? process.argv.slice(2) : testFiles();
  let count = 0;
  for (const file of files) {
    for (const p of checkSource(readFileSync(file, 'utf8'))) {
      console.error(`${relative(root, file)}:${p.line}: ${p.what}`);
      count++;
    }
  }
  if (count > 0) {
    console.error(`check-tests: ${count} test(s) that cannot fail; give each an assertion`);
    process.exit(1);
  }
  console.log(`check-tests: ${files.length} test files, every test asserts something`);
}
