// Evaluates one JavaScript ecosystem file the way PM2 loads it -- `require` of the real file
// (an ES module through `import()`), so `require('dotenv').config()`, `process.env` and
// `__dirname` work -- and writes what it exports, as JSON, to the file named by argv[3].
// With argv[4] = "expression" the file is a .json file that is not strict JSON, read as PM2
// reads those: evaluated as one JavaScript expression, in a context of its own.
// Run by pmdaemon's CLI as the invoking user, with a time limit; nothing here starts apps.
'use strict';

const fs = require('fs');
const path = require('path');
const url = require('url');
const vm = require('vm');

const target = path.resolve(process.argv[2]);
const out = process.argv[3];

function answer(result) {
  fs.writeFileSync(out, JSON.stringify(result));
  // Timers, sockets or servers the file left open must not keep the CLI waiting.
  process.exit(0);
}

// Where in the file an error was raised: the first stack line that names it.
function where(error) {
  const stack = error && typeof error.stack === 'string' ? error.stack : '';
  const escaped = target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = stack.match(new RegExp(`${escaped}:(\\d+)`));
  return match ? Number(match[1]) : null;
}

function failed(stage, error) {
  const name = error && error.name ? String(error.name) : 'Error';
  const message = error && error.message !== undefined ? String(error.message) : String(error);
  answer({ error: { stage, name, message: message.split('\n')[0], line: where(error) } });
}

// JSON.stringify with what a config file may hold that JSON has no word for: a RegExp (PM2's
// ignore_watch takes patterns) becomes its source; functions and symbols are left out.
function plain(_key, value) {
  if (value instanceof RegExp) return value.source;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

async function main() {
  let exported;
  try {
    if (process.argv[4] === 'expression') {
      const text = fs.readFileSync(target, 'utf8').replace(/^\uFEFF/, '');
      exported = vm.runInNewContext(`(${text}\n)`, {}, { filename: target, timeout: 5000 });
    } else if (/\.mjs$/i.test(target)) {
      exported = await import(url.pathToFileURL(target).href);
    } else {
      try {
        exported = require(target);
      } catch (error) {
        if (!error || error.code !== 'ERR_REQUIRE_ESM') throw error;
        exported = await import(url.pathToFileURL(target).href);
      }
    }
  } catch (error) {
    failed('evaluate', error);
    return;
  }
  if (exported && exported[Symbol.toStringTag] === 'Module') exported = exported.default;
  else if (exported && exported.__esModule && 'default' in exported) exported = exported.default;
  let kind = Array.isArray(exported) ? 'array' : typeof exported;
  if (exported === null) kind = 'null';
  else if (kind === 'object' && Object.keys(exported).length === 0) kind = 'empty';
  let data;
  try {
    data = JSON.stringify(exported, plain);
  } catch (error) {
    failed('serialize', error);
    return;
  }
  answer({ kind, data: data === undefined ? null : JSON.parse(data) });
}

main();
