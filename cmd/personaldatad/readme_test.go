package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/example/personaldata/store/storetest"
)

// TestREADME runs every ```sh block of the top-level README.md, as printed
// and in order, against a fresh server, and fails when a command fails or
// prints an error: the README cannot rot. It is part of the README's own test
// command (go test -race -count=1 ./..., which .ci/run runs); -short skips it.
//
// How:
//
//   - The first ```sh block holds the README's two commands: the server
//     command, which this test runs itself (in the background, as the reader
//     does in a shell of its own), and the test command, which it does not run
//     (it would run this test again). The test checks that the block is just
//     those two.
//   - Everything runs in a temporary directory whose entries are symbolic
//     links to the repository's top-level files and folders, but with a
//     data/ of its own: `go run ./cmd/...` and `data/operator.token` work as
//     in the repository, and the developer's ./data is never touched. (The
//     repository's own packages compile again there, their directory being
//     another; the dependencies come from the build cache, as built for the
//     other tests that build the binaries.)
//   - The blocks run in one bash session (`bash -euo pipefail`), as a
//     reader's shell does, so variables set in one block ($AUTH, $S) serve
//     the next. The script is README.md itself with every line outside the
//     other ```sh blocks blanked, so bash's LINENO is the README's line: a
//     DEBUG trap marks the start of each command in the output, and an ERR
//     trap the command that failed, both with the README's line number.
//   - A failure is a non-zero exit, or a command whose output holds an
//     error: a JSON error body as the REST gateway writes it ({"code": N,
//     "message": …} with N ≠ 0, or a stream's {"error": {…}}), a line that
//     starts with "Error:", "error:", "ERROR:" or "panic:" (after an optional
//     "program: " prefix), or "rpc error: code =". A command the README shows
//     being refused says so in a comment, `# refused: CODE` (a gRPC code such
//     as FAILED_PRECONDITION): its output must then hold an error body with
//     that code, and only that.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands against a server (about two minutes); skipped with -short")
	}
	// The README's server runs its own embedded store: the run against a
	// store reached by URI would repeat it.
	storetest.SkipInMongoMode(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("the README's commands need bash:", err)
	}
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's commands need %s (Debian: apt-get install %s): %v", tool, tool, err)
		}
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlocks(string(readme))
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d ```sh blocks; want the two commands and a tour", len(blocks))
	}
	serverCmd, err := twoCommands(blocks[0])
	if err != nil {
		t.Fatal(err)
	}

	for _, addr := range []string{"127.0.0.1:50051", "127.0.0.1:8080"} {
		if l, err := net.Listen("tcp", addr); err != nil {
			t.Fatalf("the README's server listens on %s, which is taken (is a server of yours running?): %v", addr, err)
		} else {
			l.Close()
		}
	}

	dir := viewOfRepo(t, repo)
	env := readmeEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// The server, as the first command says.
	srvLog, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("bash", "-c", "exec "+serverCmd)
	srv.Dir, srv.Env, srv.Stdout, srv.Stderr = dir, env, srvLog, srvLog
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // go run's child too
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(srvLog.Name())
			t.Logf("the server's log:\n%s", lastLines(string(b), 40))
		}
	}()
	if err := waitReady(ctx, exited); err != nil {
		b, _ := os.ReadFile(srvLog.Name())
		t.Fatalf("%q did not become ready: %v\n%s", serverCmd, err, lastLines(string(b), 40))
	}

	// The rest, in one bash session.
	script := readmeScript(string(readme), blocks[1:])
	scriptFile := filepath.Join(t.TempDir(), "readme.sh")
	if err := os.WriteFile(scriptFile, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", scriptFile)
	sh.Dir, sh.Env, sh.Stdout, sh.Stderr = dir, env, &out, &out
	sh.Stdin = nil
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := sh.Run()
	t.Logf("the README's blocks ran in %s", time.Since(start).Round(time.Second))

	cmds := commands(blocks[1:])
	segs, failed := segments(out.String())
	for _, p := range checkOutput(cmds, segs) {
		t.Error(p)
	}
	if runErr != nil {
		where := "README.md"
		if failed.line > 0 {
			where = fmt.Sprintf("README.md:%d", failed.line)
		}
		if failed.line > 0 {
			t.Errorf("%s: the README's commands stopped there, with exit status %d", where, failed.status)
		} else {
			t.Errorf("%s: the README's commands stopped: %v", where, runErr)
		}
	}
	if t.Failed() {
		t.Logf("the commands' output, each marked with its README line:\n%s", lastLines(out.String(), 200))
	}
}

// block is one ```sh block of the README: its lines and the line number of
// the first (1-based).
type block struct {
	first int
	lines []string
}

func shBlocks(readme string) []block {
	var blocks []block
	var cur *block
	for i, line := range strings.Split(readme, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &block{first: i + 2}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		}
	}
	return blocks
}

// twoCommands checks that the first block is the README's two commands, the
// server's and the tests', and returns the server's (without its comment).
func twoCommands(b block) (string, error) {
	var cmds []string
	for _, l := range b.lines {
		if c := strings.TrimSpace(stripComment(l)); c != "" {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) != 2 || !strings.HasPrefix(cmds[0], "go run ./cmd/personaldatad") || cmds[1] != "go test -race -count=1 ./..." {
		return "", fmt.Errorf("README.md:%d: the first ```sh block must be the two commands, `go run ./cmd/personaldatad…` (this test runs it) and `go test -race -count=1 ./...` (CI runs it, and it runs this test), and nothing else; it is %q", b.first, cmds)
	}
	return cmds[0], nil
}

// stripComment removes a trailing shell comment, one outside quotes that
// starts a word.
func stripComment(line string) string {
	var quote rune
	prev := ' '
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return line[:i]
		}
		prev = r
	}
	return line
}

// viewOfRepo makes a directory whose entries link to the repository's
// top-level entries, all but data/ (and built binaries): a fresh server's.
func viewOfRepo(t *testing.T, repo string) string {
	dir := t.TempDir()
	entries, err := os.ReadDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "data", "personaldatad", "pdctl", "pdbench":
			continue
		}
		if err := os.Symlink(filepath.Join(repo, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readmeEnv is the environment of a reader's shell: the test's, without the
// server's and pdctl's settings (the README uses the defaults).
func readmeEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PERSONALDATA_") || strings.HasPrefix(name, "PDCTL_") ||
			name == "GOBIN" || strings.HasPrefix(name, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls /readyz until it answers 200; the first start compiles the
// server, so this may take a while.
func waitReady(ctx context.Context, exited <-chan error) error {
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the server exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		resp, err := http.Get("http://127.0.0.1:8080/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

const (
	cmdMarker  = "@@readme-line "
	exitMarker = "@@readme-exit "
)

// readmeScript is the README with every line outside the given blocks
// blanked, so that bash's LINENO is the README's line number; its first line
// (the title, blanked) sets the traps that mark each command's output.
func readmeScript(readme string, blocks []block) string {
	lines := strings.Split(readme, "\n")
	script := make([]string, len(lines))
	for _, b := range blocks {
		copy(script[b.first-1:], b.lines)
	}
	script[0] = `trap 'printf "\n` + cmdMarker + `%d\n" "$LINENO" >&2' DEBUG; trap 'printf "\n` + exitMarker + `%d %d\n" "$?" "$LINENO" >&2' ERR`
	return strings.Join(script, "\n") + "\n"
}

// command is one command of a block: its first and last README line (a
// command goes on over a line ending in a backslash, or while a quote is
// open), and the code its `# refused: CODE` comment names.
type command struct {
	first, last int
	text        string
	refused     string
}

var refusedComment = regexp.MustCompile(`#\s*refused:\s*([A-Z_]+)`)

func commands(blocks []block) []command {
	var cmds []command
	for _, b := range blocks {
		var cur *command
		var quote rune
		for i, line := range b.lines {
			n := b.first + i
			if cur == nil {
				if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
					continue
				}
				cur = &command{first: n}
			}
			cur.last = n
			cur.text += line + "\n"
			code := line
			if quote == 0 {
				code = stripComment(line)
			}
			for _, r := range code {
				switch {
				case quote != 0 && r == quote:
					quote = 0
				case quote == 0 && (r == '\'' || r == '"'):
					quote = r
				}
			}
			if m := refusedComment.FindStringSubmatch(line); m != nil && quote == 0 {
				cur.refused = m[1]
			}
			if quote == 0 && !strings.HasSuffix(strings.TrimRight(code, " \t"), `\`) {
				cmds = append(cmds, *cur)
				cur = nil
			}
		}
	}
	return cmds
}

// segment is the output printed after the DEBUG trap marked README line line.
type segment struct {
	line int
	out  string
}

type failure struct{ line, status int }

func segments(out string) ([]segment, failure) {
	var segs []segment
	var failed failure
	cur := segment{}
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, cmdMarker):
			cur.out = b.String()
			segs = append(segs, cur)
			b.Reset()
			cur = segment{}
			cur.line, _ = strconv.Atoi(strings.TrimPrefix(l, cmdMarker))
		case strings.HasPrefix(l, exitMarker):
			fmt.Sscanf(strings.TrimPrefix(l, exitMarker), "%d %d", &failed.status, &failed.line)
		default:
			b.WriteString(l + "\n")
		}
	}
	cur.out = b.String()
	return append(segs, cur), failed
}

var errorLine = regexp.MustCompile(`(?m)^(?:[A-Za-z0-9_.-]+: )?(?:Error|error|ERROR|panic|fatal error):|rpc error: code =`)

// checkOutput names each command whose output holds an error it does not
// announce as refused, and each announced refusal that did not happen.
func checkOutput(cmds []command, segs []segment) []string {
	var problems []string
	byCmd := map[int]string{} // index in cmds → its output
	for _, s := range segs {
		for i, c := range cmds {
			if s.line >= c.first && s.line <= c.last {
				byCmd[i] += s.out
				break
			}
		}
	}
	ran := map[int]bool{}
	for _, s := range segs {
		for i, c := range cmds {
			if s.line >= c.first && s.line <= c.last {
				ran[i] = true
			}
		}
	}
	for i, c := range cmds {
		out := byCmd[i]
		where := fmt.Sprintf("README.md:%d", c.first)
		if m := errorLine.FindString(out); m != "" {
			problems = append(problems, fmt.Sprintf("%s: %s printed an error (%q):\n%s", where, strings.TrimSpace(c.text), m, out))
		}
		errs := errorBodies(out)
		if c.refused == "" {
			for _, e := range errs {
				problems = append(problems, fmt.Sprintf("%s: %s answered an error: %s", where, strings.TrimSpace(c.text), e.raw))
			}
			continue
		}
		if !ran[i] {
			continue // the run stopped before it; that failure is reported
		}
		if len(errs) == 0 {
			problems = append(problems, fmt.Sprintf("%s: the README says this is refused with %s, but it printed no error:\n%s", where, c.refused, out))
		}
		for _, e := range errs {
			if e.code != c.refused {
				problems = append(problems, fmt.Sprintf("%s: the README says this is refused with %s, but it answered %s: %s", where, c.refused, e.code, e.raw))
			}
		}
	}
	return problems
}

type errorBody struct {
	code string // FAILED_PRECONDITION
	raw  string
}

// errorBodies finds the JSON error bodies in a command's output: a unary
// call's {"code": N, "message": …} (N ≠ 0) and a stream's {"error": {…}}.
func errorBodies(out string) []errorBody {
	var found []errorBody
	for i := 0; i < len(out); i++ {
		if out[i] != '{' {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(out[i:]))
		var v map[string]json.RawMessage
		if err := dec.Decode(&v); err != nil {
			continue
		}
		raw := out[i : i+int(dec.InputOffset())]
		if e, ok := v["error"]; ok {
			var inner map[string]json.RawMessage
			if json.Unmarshal(e, &inner) == nil {
				v = inner
			}
		}
		var code int
		var msg string
		if json.Unmarshal(v["code"], &code) == nil && code != 0 && json.Unmarshal(v["message"], &msg) == nil {
			found = append(found, errorBody{code: codeName(codes.Code(code)), raw: raw})
		}
		i += int(dec.InputOffset()) - 1
	}
	return found
}

// codeName is a gRPC code as the API's documentation writes it:
// FailedPrecondition → FAILED_PRECONDITION.
func codeName(c codes.Code) string {
	s := c.String()
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// TestREADMEChecks checks how TestREADME reads commands and their output, so
// that it flags errors and only errors. It runs with -short too.
func TestREADMEChecks(t *testing.T) {
	md := "# t\n\n```sh\nX=$(curl -s -d '{\"a\":\n  1}' \\\n  http://x) # a comment\necho \"$X\"   # refused: NOT_FOUND\n# only a comment\n```\n"
	cmds := commands(shBlocks(md))
	if len(cmds) != 2 || cmds[0].first != 4 || cmds[0].last != 6 || cmds[1].first != 7 || cmds[1].refused != "NOT_FOUND" || cmds[0].refused != "" {
		t.Fatalf("commands: %+v", cmds)
	}
	script := readmeScript(md, shBlocks(md))
	if lines := strings.Split(script, "\n"); lines[3] != "X=$(curl -s -d '{\"a\":" || lines[2] != "" || lines[8] != "" {
		t.Errorf("the script does not keep the README's line numbers:\n%s", script)
	}

	for _, tc := range []struct {
		out   string
		codes []string
	}{
		{`{"code":5,"message":"subject not found","details":[]}`, []string{"NOT_FOUND"}},
		{"{\n  \"code\": 9,\n  \"message\": \"restricted\"\n}\n", []string{"FAILED_PRECONDITION"}},
		{`{"result":{"page":{}}}` + "\n" + `{"error":{"code":16,"message":"missing or invalid credentials"}}`, []string{"UNAUTHENTICATED"}},
		{`{"request":{"state":"RIGHTS_REQUEST_STATE_RECEIVED","code":{"channel":"CONTACT_CHANNEL_EMAIL","tries_left":5}}}`, nil},
		{`{"code":0,"message":"ok"}`, nil},
		{`{"subject":{"subject_id":"x"}} trailing text {not json`, nil},
	} {
		var got []string
		for _, e := range errorBodies(tc.out) {
			got = append(got, e.code)
		}
		if strings.Join(got, ",") != strings.Join(tc.codes, ",") {
			t.Errorf("errorBodies(%q) = %v, want %v", tc.out, got, tc.codes)
		}
	}
	for out, want := range map[string]bool{
		"Error: unknown flag: --bogus":                           true,
		"pdctl: rpc error: code = NotFound desc = no such":       true,
		"ERROR:\n  Code: PermissionDenied":                       true,
		"go: error: something":                                   true,
		"panic: runtime error":                                   true,
		"go: downloading github.com/fullstorydev/grpcurl":        false,
		"kind: OUTBOX_MESSAGE_KIND_RECEIPT":                      false,
		`personaldata_refusals_total{reason="error"} 1`:          false,
		"the letter: /tmp/tmp.x.html":                            false,
		`"missing":["the requester's identity is not verified"]`: false,
	} {
		if got := errorLine.MatchString(out); got != want {
			t.Errorf("errorLine on %q: %v, want %v", out, got, want)
		}
	}

	segs, failed := segments("\n" + cmdMarker + "4\nhello\n" + cmdMarker + "7\n{\"code\":5,\"message\":\"x\"}\n" + exitMarker + "1 7\n")
	if failed != (failure{line: 7, status: 1}) {
		t.Errorf("failure: %+v", failed)
	}
	if problems := checkOutput(cmds, segs); len(problems) != 0 {
		t.Errorf("a refusal the README announces was flagged: %v", problems)
	}
	segs, _ = segments("\n" + cmdMarker + "6\n{\"code\":5,\"message\":\"x\"}\n" + cmdMarker + "7\nfine\n")
	if problems := checkOutput(cmds, segs); len(problems) != 2 {
		t.Errorf("want an unannounced error and a refusal that did not happen flagged, got %v", problems)
	}
}
