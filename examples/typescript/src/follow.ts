// follow: a StreamNewArticles consumer. It prints each new article's slug
// once, keeps its resume token in a file, and reconnects and resumes forever.
//
//   node dist/follow.js --addr http://127.0.0.1:50051 --token-file feed.token [--tag TAG]... [--max-backoff-ms 1000]
//
// The proto is loaded at run time by @grpc/proto-loader from ../proto (or
// ARTICLE_SERVICE_PROTO_DIR); src/gen/ holds the types proto-loader-gen-types
// generated from the same file.

import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType } from "./gen/article_service";
import type { ArticleServiceClient } from "./gen/newsroom/content/v1/ArticleService";
import type { StreamNewArticlesResponse__Output } from "./gen/newsroom/content/v1/StreamNewArticlesResponse";

// The first reconnect waits about this long; each further one twice as long,
// up to --max-backoff-ms.
const FIRST_BACKOFF_MS = 100;

// The server went away or is busy, or the connection broke. The caller's own
// mistakes (INVALID_ARGUMENT and the like) are never retried.
const RETRYABLE = new Set<grpc.status>([
  grpc.status.UNAVAILABLE,
  grpc.status.CANCELLED,
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.DEADLINE_EXCEEDED,
]);

function fail(message: string): never {
  process.stderr.write(`follow: ${message}\n`);
  process.exit(2);
}

function options() {
  const { values } = parseArgs({
    options: {
      addr: { type: "string" },
      "token-file": { type: "string" },
      tag: { type: "string", multiple: true, default: [] },
      "max-backoff-ms": { type: "string", default: "1000" },
    },
  });
  const maxBackoffMs = Number(values["max-backoff-ms"]);
  if (!values.addr || !values["token-file"] || !Number.isInteger(maxBackoffMs) || maxBackoffMs <= 0) {
    fail("usage: follow --addr http://HOST:PORT --token-file PATH [--tag TAG]... [--max-backoff-ms N]");
  }
  return { addr: values.addr, tokenFile: values["token-file"], tags: values.tag ?? [], maxBackoffMs };
}

function client(addr: string): ArticleServiceClient {
  const protoDir = process.env.ARTICLE_SERVICE_PROTO_DIR ?? path.join(__dirname, "..", "proto");
  const definition = protoLoader.loadSync("newsroom/content/v1/article_service.proto", {
    includeDirs: [protoDir],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  // Pings on a quiet connection, so that one that died silently (a
  // partition, a replica gone behind a NAT) fails the stream within 40 s and
  // the follower reconnects, rather than wait on it forever.
  const keepalive = {
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
  };
  if (addr.startsWith("http://")) {
    return new proto.newsroom.content.v1.ArticleService(
      addr.slice("http://".length),
      grpc.credentials.createInsecure(),
      keepalive,
    );
  }
  if (addr.startsWith("https://")) {
    return new proto.newsroom.content.v1.ArticleService(
      addr.slice("https://".length),
      grpc.credentials.createSsl(),
      keepalive,
    );
  }
  fail(`--addr ${addr}: expected http://HOST:PORT or https://HOST:PORT`);
}

function readToken(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  }
}

// Replaces the file atomically and durably: a temporary file beside it,
// synced, renamed over it, and the directory synced, so a crash or a power
// loss leaves the old token or the new one, never half or none.
function writeToken(file: string, token: string): void {
  const tmp = `${file}.tmp${process.pid}`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, token);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(path.resolve(file)), "r");
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

// Exponential, capped, with jitter (between half and all of it), so that
// consumers cut off together do not come back together.
function backoff(attempt: number, maxMs: number): number {
  const delay = Math.min(maxMs, FIRST_BACKOFF_MS * 2 ** Math.min(attempt, 30));
  return delay / 2 + Math.random() * (delay / 2);
}

function main(): void {
  const { addr, tokenFile, tags, maxBackoffMs } = options();
  const stub = client(addr);
  // Every handler below runs to its end before a signal's: printing an
  // article and storing its token are never separated by an exit.
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => process.exit(0));

  let token = readToken(tokenFile);
  let attempt = 0;
  const connect = (): void => {
    let received = false;
    const call = stub.StreamNewArticles({ tags, resumeToken: token });
    call.on("data", (message: StreamNewArticlesResponse__Output) => {
      received = true;
      if (message.article) process.stdout.write(`${message.article.slug}\n`);
      // Stored after handling, heartbeats included: a restart resumes after
      // the last message handled.
      writeToken(tokenFile, message.resumeToken);
      token = message.resumeToken;
    });
    // An OK end (which the contract rules out) or an error: one of the two.
    call.on("status", (status: grpc.StatusObject) => {
      if (status.code !== grpc.status.OK && !RETRYABLE.has(status.code)) {
        process.stderr.write(`follow: StreamNewArticles: ${grpc.status[status.code]}: ${status.details}\n`);
        process.exit(1);
      }
      if (received) attempt = 0;
      const delay = backoff(attempt, maxBackoffMs);
      attempt += 1;
      const reason = status.code === grpc.status.OK ? "end of stream" : `${grpc.status[status.code]}: ${status.details}`;
      process.stderr.write(`follow: stream ended (${reason}); reconnecting in ${Math.round(delay)}ms\n`);
      setTimeout(connect, delay);
    });
    // Errors also arrive as "status"; without a listener they would throw.
    call.on("error", () => undefined);
  };
  connect();
}

main();
