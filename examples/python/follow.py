"""follow: a StreamNewArticles consumer. It prints each new article's slug once,
keeps its resume token in a file, and reconnects and resumes forever.

    follow.py --addr http://127.0.0.1:50051 --token-file feed.token [--tag TAG]... [--max-backoff-ms 1000]

The generated modules (grpc_tools.protoc --python_out --grpc_python_out) must be
on PYTHONPATH as newsroom/content/v1/.
"""

import argparse
import os
import random
import signal
import sys
import tempfile
import time

import grpc

from newsroom.content.v1 import article_service_pb2 as pb
from newsroom.content.v1 import article_service_pb2_grpc as pb_grpc

# The first reconnect waits about this long; each further one twice as long,
# up to --max-backoff-ms.
FIRST_BACKOFF_S = 0.1

# The server went away or is busy, or the connection broke. The caller's own
# mistakes (INVALID_ARGUMENT and the like) are never retried.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


class Stopper:
    """SIGTERM/SIGINT exit 0, but never between printing an article and
    storing its token (that would print it again after a restart)."""

    def __init__(self):
        self.busy = False
        self.requested = False
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, _signum, _frame):
        if self.busy:
            self.requested = True
        else:
            self.exit()

    def exit(self):
        sys.stdout.flush()
        # Not sys.exit: gRPC's threads can hold up the interpreter's shutdown.
        os._exit(0)


# Pings on a quiet connection, so that one that died silently (a partition, a
# replica gone behind a NAT) fails the stream within 40 s and the follower
# reconnects, rather than wait on it forever.
KEEPALIVE = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A follower only receives; without this, gRPC C-core stops pinging (or
    # slows to a ping a minute) once it has sent 2 pings without data.
    ("grpc.http2.max_pings_without_data", 0),
]


def channel_for(addr):
    if addr.startswith("http://"):
        return grpc.insecure_channel(addr[len("http://"):], options=KEEPALIVE)
    if addr.startswith("https://"):
        return grpc.secure_channel(
            addr[len("https://"):], grpc.ssl_channel_credentials(), options=KEEPALIVE
        )
    raise SystemExit(f"follow: --addr {addr!r}: expected http://HOST:PORT or https://HOST:PORT")


def read_token(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def write_token(path, token):
    """Replaces the file atomically and durably: a temporary file beside it,
    synced, renamed over it, and the directory synced, so a crash or a power
    loss leaves the old token or the new one, never half or none."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def backoff(attempt, max_s):
    """Exponential, capped, with jitter (between half and all of it), so that
    consumers cut off together do not come back together."""
    delay = min(max_s, FIRST_BACKOFF_S * (2 ** min(attempt, 30)))
    return random.uniform(delay / 2, delay)


def follow(stub, token_file, tags, max_backoff_s, stopper):
    token = read_token(token_file)
    attempt = 0
    while True:
        received = False
        reason = "end of stream"
        call = stub.StreamNewArticles(pb.StreamNewArticlesRequest(tags=tags, resume_token=token))
        try:
            for message in call:
                received = True
                stopper.busy = True
                if message.HasField("article"):
                    sys.stdout.write(message.article.slug + "\n")
                    sys.stdout.flush()
                # Stored after handling, heartbeats included: a restart
                # resumes after the last message handled.
                write_token(token_file, message.resume_token)
                token = message.resume_token
                stopper.busy = False
                if stopper.requested:
                    stopper.exit()
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE:
                print(f"follow: StreamNewArticles: {error.code().name}: {error.details()}", file=sys.stderr)
                return 1
            reason = f"{error.code().name}: {error.details()}"
        if received:
            attempt = 0
        delay = backoff(attempt, max_backoff_s)
        attempt += 1
        print(f"follow: stream ended ({reason}); reconnecting in {delay * 1000:.0f}ms", file=sys.stderr, flush=True)
        time.sleep(delay)


def main():
    parser = argparse.ArgumentParser(description="Follow StreamNewArticles, printing each article's slug once.")
    parser.add_argument("--addr", required=True, help="http://HOST:PORT (plaintext) or https://HOST:PORT (TLS)")
    parser.add_argument("--token-file", required=True, help="where the resume token is kept")
    parser.add_argument("--tag", action="append", default=[], help="only articles with this tag (repeatable)")
    parser.add_argument("--max-backoff-ms", type=int, default=1000, help="longest wait between reconnects")
    args = parser.parse_args()
    if args.max_backoff_ms <= 0:
        parser.error("--max-backoff-ms must be positive")
    stopper = Stopper()
    with channel_for(args.addr) as channel:
        stub = pb_grpc.ArticleServiceStub(channel)
        return follow(stub, args.token_file, args.tag, args.max_backoff_ms / 1000, stopper)


if __name__ == "__main__":
    sys.exit(main())
