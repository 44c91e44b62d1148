package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/example/personaldata/cmd/personaldatad/server"
	"github.com/example/personaldata/store"

	"github.com/prometheus/procfs"
)

// serveEnv set to 1 makes pdbench the server child: the server runs in a
// process of its own so that its CPU time, and its CPU profile, are not the
// benchmark's client's.
const serveEnv = "PDBENCH_SERVE"

// serverInfo is the one JSON line the child writes to stdout once its server
// serves.
type serverInfo struct {
	GRPCAddr      string `json:"grpc_addr"`
	HTTPAddr      string `json:"http_addr"`
	StoreURI      string `json:"store_uri"`
	OperatorToken string `json:"operator_token"`
	DataDir       string `json:"data_dir"`
}

// parseHandshake reads the child's first line.
func parseHandshake(line string) (serverInfo, error) {
	var info serverInfo
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return info, fmt.Errorf("server process: unexpected first line: %w", err)
	}
	if info.GRPCAddr == "" || info.HTTPAddr == "" || info.StoreURI == "" || info.OperatorToken == "" || info.DataDir == "" {
		return info, errors.New("server process: first line lacks an address, the store URI, operator token or data directory")
	}
	return info, nil
}

// Commands the child reads from stdin, one a line. It answers each with a
// line "ok" (with the answer, for spans) or "error: <reason>".
const (
	cmdProfileStart = "profile-start" // profile-start <file>: start a CPU profile into file
	cmdProfileStop  = "profile-stop"  // stop it and write the file out
	cmdSpans        = "spans"         // the spans ended since the last time, as JSON (spanTotals)
)

// parseCommand splits a command line into the command and its argument.
func parseCommand(line string) (cmd, arg string, err error) {
	cmd, arg, _ = strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	switch {
	case cmd == cmdProfileStart && arg == "":
		return "", "", errors.New(cmdProfileStart + " needs a file")
	case (cmd == cmdProfileStop || cmd == cmdSpans) && arg != "":
		return "", "", errors.New(cmd + " takes no argument")
	case cmd != cmdProfileStart && cmd != cmdProfileStop && cmd != cmdSpans:
		return "", "", fmt.Errorf("unknown command %q", cmd)
	}
	return cmd, arg, nil
}

// serveChild is the child: it starts the server on an embedded store in a
// temporary directory, says where it is, and obeys commands until stdin
// ends or a signal comes. Then it stops any profile, shuts the server down
// and removes the directory.
func serveChild(args []string) error {
	server.TuneRuntime() // as the daemon does
	if len(args) != 3 || (args[2] != "spans" && args[2] != "-") {
		return fmt.Errorf("%s=1 takes the database name, the durability and \"spans\" or \"-\" as its arguments", serveEnv)
	}
	durability, err := store.ParseDurability(args[1])
	if err != nil {
		return err
	}
	var spans *spanAggregator
	if args[2] == "spans" {
		spans = newSpanAggregator()
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	srv, operator, dir, stopServer, err := startServer(ctx, args[0], durability, spans)
	if err != nil {
		return err
	}
	defer stopServer()

	line, err := json.Marshal(serverInfo{
		GRPCAddr: srv.GRPCAddr(), HTTPAddr: srv.HTTPAddr(), StoreURI: srv.StoreURI(), OperatorToken: operator, DataDir: filepath.Join(dir, "data"),
	})
	if err != nil {
		return err
	}
	if _, err := fmt.Printf("%s\n", line); err != nil {
		return err
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var profile *os.File
	// Deferred after stopServer, so the profile ends before the shutdown.
	defer func() {
		if profile != nil {
			pprof.StopCPUProfile()
			_ = profile.Close()
		}
	}()
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case line, ok = <-lines:
			if !ok {
				return nil // stdin ended: the parent is done, or gone
			}
		}
		cmd, arg, err := parseCommand(line)
		var answer string
		switch {
		case err != nil:
		case cmd == cmdProfileStart && profile != nil:
			err = errors.New("a profile is running")
		case cmd == cmdProfileStart:
			if profile, err = os.Create(arg); err == nil {
				if err = pprof.StartCPUProfile(profile); err != nil {
					_ = profile.Close()
					profile = nil
				}
			}
		case cmd == cmdProfileStop && profile == nil:
			err = errors.New("no profile is running")
		case cmd == cmdProfileStop:
			pprof.StopCPUProfile()
			err = profile.Close()
			profile = nil
		case cmd == cmdSpans && spans == nil:
			err = errors.New("the server was started without spans")
		case cmd == cmdSpans:
			answer, err = spans.take()
		}
		reply := strings.TrimSpace("ok " + answer)
		if err != nil {
			reply = "error: " + err.Error()
		}
		if _, err := fmt.Println(reply); err != nil {
			return err
		}
	}
}

// serverProcess is the server child as the parent sees it.
type serverProcess struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc // ends the child: SIGTERM, then SIGKILL
	stdin  io.WriteCloser
	stdout *bufio.Reader
	info   serverInfo
}

// startServerProcess runs this binary again as the server child and waits
// until its server serves. The caller must call stop, on every path.
func startServerProcess(ctx context.Context, database string, durability store.Durability, spans bool) (*serverProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Not ctx: after an interrupt the child still shuts down in good order,
	// on stdin's end; killing is stop's last resort.
	procCtx, cancel := context.WithCancel(context.Background())
	spansArg := "-"
	if spans {
		spansArg = "spans"
	}
	cmd := exec.CommandContext(procCtx, exe, database, string(durability), spansArg)
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second // after SIGTERM, SIGKILL
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start the server process: %w", err)
	}
	p := &serverProcess{cmd: cmd, cancel: cancel, stdin: stdin, stdout: bufio.NewReader(stdout)}

	type handshake struct {
		info serverInfo
		err  error
	}
	got := make(chan handshake, 1)
	go func() {
		line, err := p.stdout.ReadString('\n')
		if err != nil {
			got <- handshake{err: errors.New("server process ended before its server served")}
			return
		}
		info, err := parseHandshake(line)
		got <- handshake{info, err}
	}()
	select {
	case h := <-got:
		if h.err != nil {
			p.stop()
			return nil, h.err
		}
		p.info = h.info
		return p, nil
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

func (p *serverProcess) pid() int { return p.cmd.Process.Pid }

// command sends the child a command and waits for its answer.
func (p *serverProcess) command(line string) error {
	_, err := p.query(line)
	return err
}

// query sends the child a command and returns what its "ok" answer holds.
func (p *serverProcess) query(line string) (string, error) {
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return "", fmt.Errorf("server process: %w", err)
	}
	reply, err := p.stdout.ReadString('\n')
	if err != nil {
		return "", errors.New("server process ended")
	}
	reply = strings.TrimSpace(reply)
	if reason, ok := strings.CutPrefix(reply, "error: "); ok {
		return "", errors.New(reason)
	}
	answer, ok := strings.CutPrefix(reply, "ok")
	if !ok || (answer != "" && answer[0] != ' ') {
		return "", fmt.Errorf("server process: unexpected answer %q", reply)
	}
	return strings.TrimSpace(answer), nil
}

// stop closes the child's stdin, which shuts it down, and waits for it to
// exit. A child still running after a minute (the server's own shutdown
// takes at most 30 s) gets SIGTERM, and SIGKILL ten seconds later.
func (p *serverProcess) stop() {
	_ = p.stdin.Close()
	kill := time.AfterFunc(time.Minute, p.cancel)
	err := p.cmd.Wait()
	kill.Stop()
	p.cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdbench: server process:", err)
	}
}

// cpuMeter reads a process's CPU time so far, user and system.
type cpuMeter func() (time.Duration, error)

// procCPU measures process pid through /proc.
func procCPU(pid int) cpuMeter {
	return func() (time.Duration, error) {
		p, err := procfs.NewProc(pid)
		if err != nil {
			return 0, err
		}
		st, err := p.Stat()
		if err != nil {
			return 0, err
		}
		return time.Duration(st.CPUTime() * float64(time.Second)), nil
	}
}
