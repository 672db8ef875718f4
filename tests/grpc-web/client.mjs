// A gRPC-Web client of ArticleService over HTTP/1.1, as a browser speaks it
// (connect-es's gRPC-Web transport), for tests/e2e/grpc_web.rs:
//
//   node client.mjs get --addr http://127.0.0.1:PORT --slug SLUG
//       prints "<slug> <revision> <title>", or "error <code name> <message>"
//   node client.mjs stream --addr http://127.0.0.1:PORT [--tag TAG]... --count N
//       writes "headers" to stderr once the response headers are in (the
//       subscription is then in place), then prints each article's slug,
//       and exits after N articles
//
// gen/ holds the code protoc-gen-es generated from the proto.

import { parseArgs } from "node:util";

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";

import { ArticleService } from "./gen/newsroom/content/v1/article_service_pb.js";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    addr: { type: "string" },
    slug: { type: "string" },
    tag: { type: "string", multiple: true, default: [] },
    count: { type: "string", default: "1" },
  },
});

const client = createClient(
  ArticleService,
  createGrpcWebTransport({ baseUrl: values.addr, httpVersion: "1.1" }),
);

try {
  switch (positionals[0]) {
    case "get": {
      const { article } = await client.getArticle({ key: { case: "slug", value: values.slug } });
      console.log(`${article.slug} ${article.revision} ${article.title}`);
      break;
    }
    case "stream": {
      let left = Number(values.count);
      const stream = client.streamNewArticles(
        { tags: values.tag },
        { onHeader: () => process.stderr.write("headers\n") },
      );
      for await (const message of stream) {
        if (!message.article) continue; // a heartbeat
        console.log(message.article.slug);
        if (--left === 0) break;
      }
      break;
    }
    default:
      throw new Error(`unknown command ${positionals[0]}`);
  }
} catch (error) {
  const e = ConnectError.from(error);
  console.log(`error ${Code[e.code]} ${e.rawMessage}`);
}
// Now, without waiting for the cancelled stream's HTTP/1.1 connection to wind down.
process.exit(0);
