#!/usr/bin/env node
// Replays tests/fixtures/differential.json against the reference
// @modelcontextprotocol/server-memory over stdio (raw JSON-RPC, one request at a time, a fresh
// MEMORY_FILE_PATH) and prints, per script entry and in the same order, the response's `result`
// or `error` object:
//
//   node tests/differential/replay-reference.mjs > tests/fixtures/differential.expected.json
//
// The reference is found through MCP_REFERENCE_SERVER (path of its dist/index.js, as scripts/test
// exports it), else in the project's npm tool prefix (`source scripts/lib.sh; npm_tool
// @modelcontextprotocol/server-memory@2026.8.31`).
// Options: --script FILE, --memory-out FILE (the reference's JSONL file after the run),
// --tools-list FILE (its initialize + tools/list results).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REFERENCE_VERSION = '2026.8.31';
const PROTOCOL_VERSION = '2025-11-25';
const CALL_TIMEOUT_MS = 15_000;

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const opts = { script: join(repo, 'tests/fixtures/differential.json') };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = { '--script': 'script', '--memory-out': 'memoryOut', '--tools-list': 'toolsList' }[process.argv[i]];
  if (!key || process.argv[i + 1] === undefined) fail(`usage: replay-reference.mjs [--script F] [--memory-out F] [--tools-list F]`);
  opts[key] = process.argv[i + 1];
}

function fail(message) {
  process.stderr.write(`replay-reference: ${message}\n`);
  process.exit(2);
}

function referenceServer() {
  const toolsDir = process.env.MCP_TOOLS_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mcp-server-tools');
  const server = process.env.MCP_REFERENCE_SERVER
    ?? join(toolsDir, 'npm/node_modules/@modelcontextprotocol/server-memory/dist/index.js');
  if (!existsSync(server)) {
    fail(`reference not found at ${server}: set MCP_REFERENCE_SERVER, or run\n` +
      `  source scripts/lib.sh && npm_tool @modelcontextprotocol/server-memory@${REFERENCE_VERSION}`);
  }
  // The recorded texts are those of one exact release (and the SDK/zod it resolved to).
  const pkg = JSON.parse(readFileSync(join(dirname(server), '..', 'package.json'), 'utf8'));
  if (pkg.version !== REFERENCE_VERSION) fail(`${server} is version ${pkg.version}, want ${REFERENCE_VERSION}`);
  return server;
}

// The version of `name` that `fromFile` imports (walks up from the resolved entry point).
function resolvedVersion(fromFile, name, entry) {
  let dir = dirname(createRequire(fromFile).resolve(entry ? `${name}/${entry}` : name));
  for (; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      if (pkg.name === name) return pkg.version;
    }
  }
  return 'unknown';
}

const script = JSON.parse(readFileSync(opts.script, 'utf8'));
const server = referenceServer();
// The SDK (and zod through it) float within the reference's ranges and write the error texts:
// say which ones produced this recording.
const sdkVersion = resolvedVersion(server, '@modelcontextprotocol/sdk', 'server/mcp.js');
const sdkEntry = createRequire(server).resolve('@modelcontextprotocol/sdk/server/mcp.js');
process.stderr.write(`replay-reference: server-memory ${REFERENCE_VERSION}, sdk ${sdkVersion}, ` +
  `zod ${resolvedVersion(sdkEntry, 'zod', '')}, node ${process.version}\n`);
const dir = mkdtempSync(join(tmpdir(), 'memory-reference-'));
const memoryFile = join(dir, 'memory.jsonl');
const child = spawn(process.execPath, [server], {
  env: { ...process.env, MEMORY_FILE_PATH: memoryFile },
  stdio: ['pipe', 'pipe', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });
child.on('exit', (code, signal) => {
  if (!finished) fail(`reference exited early (${code ?? signal}); its stderr:\n${stderr}`);
});

// Newline-delimited JSON-RPC; requests go one at a time (the reference loads and saves the whole
// file per call, so concurrent calls could interleave), and each waits for its own id.
const pending = new Map();
let buffer = '';
let finished = false;
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    if (!line) continue;
    const message = JSON.parse(line);
    const waiter = message.id !== undefined && !message.method ? pending.get(message.id) : undefined;
    if (waiter) {
      pending.delete(message.id);
      waiter(message);
    }
    // Notifications (none expected without a resource subscription) are ignored.
  }
});

let nextId = 1;
function request(method, params) {
  const id = nextId++;
  const message = { jsonrpc: '2.0', id, method };
  if (params !== undefined) message.params = params;
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`no answer to ${method} #${id} within ${CALL_TIMEOUT_MS} ms`), CALL_TIMEOUT_MS);
    pending.set(id, (response) => { clearTimeout(timer); resolve(response); });
    child.stdin.write(`${JSON.stringify(message)}\n`);
  });
}

const outcome = (response) => ('error' in response ? { error: response.error } : { result: response.result });

const init = await request('initialize', {
  protocolVersion: PROTOCOL_VERSION,
  capabilities: {},
  clientInfo: { name: 'replay-reference', version: '1' },
});
if (init.error) fail(`initialize failed: ${JSON.stringify(init.error)}`);
child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);

if (opts.toolsList) {
  const tools = await request('tools/list', {});
  writeFileSync(opts.toolsList, `${JSON.stringify({ initialize: init.result, toolsList: tools.result }, null, 2)}\n`);
}

const results = [];
for (const step of script) {
  // An entry without "arguments" sends tools/call with no arguments member at all.
  const params = { name: step.tool };
  if ('arguments' in step) params.arguments = step.arguments;
  results.push(outcome(await request('tools/call', params)));
}

if (opts.memoryOut) {
  writeFileSync(opts.memoryOut, existsSync(memoryFile) ? readFileSync(memoryFile) : '');
}
finished = true;
child.stdin.end();
child.kill();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
