// follow: a StreamNewArticles consumer. It prints each new article's slug once,
// keeps its resume token in a file, and reconnects and resumes forever.
//
//	follow --addr http://127.0.0.1:50051 --token-file feed.token [--tag TAG]... [--max-backoff-ms 1000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	contentv1 "article-service/gen/contentv1"
)

// The first reconnect waits about this long; each further one twice as long,
// up to --max-backoff-ms.
const firstBackoff = 100 * time.Millisecond

type tags []string

func (t *tags) String() string     { return strings.Join(*t, ",") }
func (t *tags) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	addr := flag.String("addr", "", "server address: http://HOST:PORT (plaintext) or https://HOST:PORT (TLS)")
	tokenFile := flag.String("token-file", "", "where the resume token is kept")
	maxBackoffMs := flag.Int("max-backoff-ms", 1000, "longest wait between reconnects, in milliseconds")
	var tagFilter tags
	flag.Var(&tagFilter, "tag", "only articles with this tag (repeatable)")
	flag.Parse()
	if *addr == "" || *tokenFile == "" || *maxBackoffMs <= 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	conn, err := dial(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "follow: %v\n", err)
		os.Exit(2)
	}
	defer conn.Close()
	err = follow(ctx, contentv1.NewArticleServiceClient(conn), *tokenFile, tagFilter,
		time.Duration(*maxBackoffMs)*time.Millisecond)
	if ctx.Err() != nil {
		os.Exit(0) // SIGTERM or SIGINT
	}
	fmt.Fprintf(os.Stderr, "follow: %v\n", err)
	os.Exit(1)
}

// Pings on a quiet connection, so that one that died silently (a partition,
// a replica gone behind a NAT) fails the stream within 40 s and the follower
// reconnects, rather than wait on it forever.
var pings = grpc.WithKeepaliveParams(keepalive.ClientParameters{
	Time:                30 * time.Second,
	Timeout:             10 * time.Second,
	PermitWithoutStream: true,
})

func dial(addr string) (*grpc.ClientConn, error) {
	switch {
	case strings.HasPrefix(addr, "http://"):
		return grpc.Dial(strings.TrimPrefix(addr, "http://"), grpc.WithInsecure(), pings)
	case strings.HasPrefix(addr, "https://"):
		creds := credentials.NewClientTLSFromCert(nil, "")
		return grpc.Dial(strings.TrimPrefix(addr, "https://"), grpc.WithTransportCredentials(creds), pings)
	}
	return nil, fmt.Errorf("--addr %q: expected http://HOST:PORT or https://HOST:PORT", addr)
}

// follow streams until ctx ends or the server answers with a code that
// retrying cannot fix.
func follow(ctx context.Context, client contentv1.ArticleServiceClient, tokenFile string, tagFilter []string, maxBackoff time.Duration) error {
	token, err := readToken(tokenFile)
	if err != nil {
		return err
	}
	attempt := 0
	for {
		received, err := streamOnce(ctx, client, tokenFile, tagFilter, &token)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if received {
			attempt = 0
		}
		code := status.Code(err)
		if err != nil && !retryable(code) {
			return fmt.Errorf("StreamNewArticles: %w", err)
		}
		delay := backoff(attempt, maxBackoff)
		attempt++
		fmt.Fprintf(os.Stderr, "follow: stream ended (%v); reconnecting in %v\n", describe(err), delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// streamOnce reads one stream until it fails; received says whether any
// message arrived (which resets the backoff).
func streamOnce(ctx context.Context, client contentv1.ArticleServiceClient, tokenFile string, tagFilter []string, token *string) (bool, error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.StreamNewArticles(streamCtx, &contentv1.StreamNewArticlesRequest{
		Tags:        tagFilter,
		ResumeToken: *token,
	})
	if err != nil {
		return false, err
	}
	received := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			return received, err
		}
		received = true
		if article := msg.GetArticle(); article != nil {
			if _, err := fmt.Fprintf(os.Stdout, "%s\n", article.GetSlug()); err != nil {
				return received, status.Error(codes.Aborted, "stdout: "+err.Error())
			}
		}
		// Stored after handling, heartbeats included: a restart resumes
		// after the last message handled.
		if err := writeToken(tokenFile, msg.GetResumeToken()); err != nil {
			return received, status.Error(codes.Aborted, err.Error())
		}
		*token = msg.GetResumeToken()
	}
}

// retryable: the server went away or is busy, or the connection broke
// (grpc-go reports a reset stream as INTERNAL or UNKNOWN). The caller's own
// mistakes (INVALID_ARGUMENT and the like) are never retried. io.EOF (an OK
// end, which the contract rules out) is retried too.
func retryable(code codes.Code) bool {
	switch code {
	case codes.OK, codes.Unavailable, codes.Canceled, codes.Unknown, codes.Internal,
		codes.ResourceExhausted, codes.DeadlineExceeded:
		return true
	}
	return false
}

func describe(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return "end of stream"
	}
	s := status.Convert(err)
	return fmt.Sprintf("%v: %s", s.Code(), s.Message())
}

// Seeded per process: math/rand's global source starts from the same seed in
// every process (before Go 1.20), which would bring consumers back in step.
var jitter = rand.New(rand.NewSource(time.Now().UnixNano()))

// backoff: exponential, capped, with jitter (between half and all of it), so
// that consumers cut off together do not come back together.
func backoff(attempt int, max time.Duration) time.Duration {
	delay := firstBackoff
	for i := 0; i < attempt && delay < max; i++ {
		delay *= 2
	}
	if delay > max {
		delay = max
	}
	half := delay / 2
	return half + time.Duration(jitter.Int63n(int64(half)+1))
}

func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// writeToken replaces the file atomically and durably: a temporary file
// beside it, synced, renamed over it, and the directory synced, so a crash or
// a power loss leaves the old token or the new one, never half or none.
func writeToken(path, token string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing the token file: %w", err)
	}
	_, werr := tmp.WriteString(token)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if werr != nil || serr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the token file: %v %v %v", werr, serr, cerr)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the token file: %w", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("syncing the token file's directory: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("syncing the token file's directory: %w", err)
	}
	return nil
}
