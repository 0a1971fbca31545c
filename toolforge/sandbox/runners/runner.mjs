// toolforge runner for TypeScript tools (transpiled to /opt/tool/main.mjs at build time).
//
// Copied into every tool image as /opt/toolforge/runner.mjs; the local backend runs it on the
// host's node. Node built-ins only. The protocol is the one runner.py speaks: newline-delimited
// JSON frames; {"ready": true} once the tool is imported (or {"ready": false, "error": ...}
// and exit); each request {"id", "args", "output_limit"?} gets one response {"id", "ok",
// "result" | "error": {type, message, traceback}, "stdout", "stderr", "duration_ms",
// "truncated"}.
//
// Node has no dup2, so the runner does the same by hand before anything touches
// process.stdout: it opens private handles on /proc/self/fd/{0,1} for the protocol, closes fds
// 0, 1 and 2 and reopens them on /dev/null and two capture files (open() takes the lowest free
// fd). console.log, process.stdout.write and child processes with inherited stdio therefore
// all land in the capture files, never in a frame.

import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const TOOL_DIR = path.resolve(process.env.TOOLFORGE_TOOL_DIR || "/opt/tool");
const DEFAULT_OUTPUT_LIMIT = Number(process.env.TOOLFORGE_OUTPUT_LIMIT || 1024 * 1024);
const SWEEP = process.env.TOOLFORGE_SWEEP === "1";
const MARKER_RESERVE = 120;
const TRACEBACK_MAX = 8000;

// -- fd surgery: must run before anything initialises process.stdout / process.stderr ------
const protoOut = fs.openSync("/proc/self/fd/1", "w");
const protoIn = fs.openSync("/proc/self/fd/0", "r");
const captureDir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "toolforge-capture-"));
fs.closeSync(0);
fs.openSync("/dev/null", "r"); // becomes fd 0
const captures = [1, 2].map((fd) => {
  fs.closeSync(fd);
  const file = path.join(captureDir, `fd${fd}`);
  const got = fs.openSync(file, "a+"); // becomes fd 1, then fd 2 (O_APPEND: truncation rewinds)
  if (got !== fd) throw new Error(`capture for fd ${fd} landed on fd ${got}`);
  fs.unlinkSync(file);
  return got;
});
fs.rmdirSync(captureDir);

function send(frame) {
  const data = Buffer.from(JSON.stringify(frame) + "\n", "utf8");
  let off = 0;
  while (off < data.length) off += fs.writeSync(protoOut, data, off);
}

function captureSize(fd) {
  return fs.fstatSync(fd).size;
}

function captureRead(fd, limit) {
  if (limit <= 0) return "";
  const buf = Buffer.alloc(limit);
  const n = fs.readSync(fd, buf, 0, limit, 0);
  return buf.subarray(0, n).toString("utf8");
}

function resetCaptures() {
  for (const fd of captures) fs.ftruncateSync(fd, 0);
}

// Share the output budget: the result first, then stdout and stderr, each capped with a marker.
function fitOutput(resultJson, limit) {
  const kb = Math.max(1, Math.floor(limit / 1024));
  const resultLen = resultJson === undefined ? 0 : Buffer.byteLength(resultJson, "utf8");
  const tooBig = resultLen > limit;
  const remaining = Math.max(0, limit - (tooBig ? 0 : resultLen) - 2 * MARKER_RESERVE);
  const sizes = captures.map(captureSize);
  let keep = [...sizes];
  if (sizes[0] + sizes[1] > remaining) {
    const half = Math.floor(remaining / 2);
    if (sizes[0] <= half) keep = [sizes[0], remaining - sizes[0]];
    else if (sizes[1] <= half) keep = [remaining - sizes[1], sizes[1]];
    else keep = [half, remaining - half];
  }
  let truncated = tooBig;
  const texts = captures.map((fd, i) => {
    let text = captureRead(fd, keep[i]);
    if (sizes[i] > keep[i]) {
      truncated = true;
      text += `\n[toolforge: output truncated, ${sizes[i] - keep[i]} more bytes dropped (limits.output_kb = ${kb})]`;
    }
    return text;
  });
  return { stdout: texts[0], stderr: texts[1], truncated, tooBig };
}

function errorInfo(err) {
  if (err instanceof Error) {
    return {
      type: err.name || err.constructor?.name || "Error",
      message: err.message,
      traceback: String(err.stack || "").slice(-TRACEBACK_MAX),
    };
  }
  return { type: "Error", message: `the tool threw a non-Error value: ${safeString(err)}`, traceback: "" };
}

function safeString(value) {
  try {
    return typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function sweepStrays() {
  if (!SWEEP) return;
  for (const entry of fs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && pid !== 1 && pid !== process.pid && pid !== process.ppid) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

let pendingFailure = null; // an uncaught error raised while a call is running fails that call
process.on("uncaughtException", (err) => {
  pendingFailure = err;
});
process.on("unhandledRejection", (err) => {
  pendingFailure = err;
});

async function handle(request, run) {
  const limit = Number(request.output_limit || DEFAULT_OUTPUT_LIMIT);
  resetCaptures();
  pendingFailure = null;
  const start = performance.now();
  let error = null;
  let resultJson;
  try {
    const result = await run(request.args || {});
    if (pendingFailure) throw pendingFailure;
    resultJson = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    error = errorInfo(err);
  }
  sweepStrays();
  const duration = performance.now() - start;
  const out = fitOutput(resultJson, limit);
  if (!error && out.tooBig) {
    error = {
      type: "OutputLimitExceeded",
      traceback: "",
      message: `the result is ${Buffer.byteLength(resultJson, "utf8")} bytes, over the output limit of ${Math.max(1, Math.floor(limit / 1024))} KB (limits.output_kb); return less data`,
    };
  }
  const response = { id: request.id ?? null, ok: error === null };
  if (error === null) response.result = JSON.parse(resultJson);
  else response.error = error;
  Object.assign(response, {
    stdout: out.stdout,
    stderr: out.stderr,
    duration_ms: duration,
    truncated: out.truncated || (error !== null && error.type === "OutputLimitExceeded"),
  });
  return response;
}

async function load() {
  const mod = await import(pathToFileURL(path.join(TOOL_DIR, "main.mjs")).href);
  const run = typeof mod.run === "function" ? mod.run : mod.default;
  if (typeof run !== "function") {
    const err = new Error("main.ts exports no run() function (it must: export function run(args) { ... })");
    err.name = "ToolLoadError";
    throw err;
  }
  return run;
}

async function main() {
  let run;
  try {
    run = await load();
  } catch (err) {
    const info = errorInfo(err);
    if (info.type !== "ToolLoadError") info.message = `loading the tool failed: ${info.message}`;
    const out = fitOutput(undefined, DEFAULT_OUTPUT_LIMIT);
    send({ ready: false, error: info, stdout: out.stdout, stderr: out.stderr });
    process.exit(1);
  }
  send({ ready: true, language: "typescript", pid: process.pid });

  const input = new net.Socket({ fd: protoIn, readable: true, writable: false });
  let buffered = "";
  let queue = Promise.resolve();
  input.setEncoding("utf8");
  input.on("data", (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      const request = JSON.parse(line);
      queue = queue.then(async () => send(await handle(request, run)));
    }
  });
  input.on("end", () => queue.then(() => process.exit(0)));
}

main();
