// Command pdctl is the operators' and support staff's tool for
// personaldatad, over gRPC: principals and master keys, finding and
// exporting a subject, the queue of rights requests, the outbox, processor
// agreements, the register of processing and the audit chains.
//
//	pdctl [--addr 127.0.0.1:50051] [--token-file data/operator.token] <command> [flags]
//
// "pdctl help" lists the commands and "pdctl help <command>" (or --help)
// explains one; "pdctl completion bash|zsh|fish|powershell" prints a shell
// completion script. Flags may also be written with one dash (-id), as
// before the move to cobra, so existing scripts keep working.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pdctl:", err)
		os.Exit(1)
	}
}

// run is pdctl with the process's standard input and error.
func run(ctx context.Context, args []string, out io.Writer) error {
	return execute(ctx, args, os.Stdin, out, os.Stderr)
}

// execute runs one command line; help goes to out, prompts to errOut.
func execute(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	a := &app{in: in, out: out, errOut: errOut}
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(longFlagsWithOneDash(root, args))
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	return root.ExecuteContext(ctx)
}

// app is what the commands share: how to reach the server, the connection
// once made, and the standard streams.
type app struct {
	conn
	in          io.Reader
	out, errOut io.Writer
	cc          *grpc.ClientConn
}

// client connects on first use, so commands that need no server (keys
// add-version, help, completion) need no token either.
func (a *app) client() (*grpc.ClientConn, error) {
	if a.cc == nil {
		cc, err := a.dial()
		if err != nil {
			return nil, err
		}
		a.cc = cc
	}
	return a.cc, nil
}

func (a *app) close() {
	if a.cc != nil {
		_ = a.cc.Close()
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "pdctl",
		Short: "Operate personaldatad: principals, keys, subjects, rights requests, audit",
		Long: `pdctl talks to personaldatad over gRPC with a bearer token (or a client
certificate). It reads data/operator.token and talks to 127.0.0.1:50051 unless
told otherwise. Operators administer principals, keys, agreements and the audit
trail; support staff find and export subjects and work the rights requests,
each with their own token (--token-file).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", envOr("PDCTL_ADDR", "127.0.0.1:50051"), "gRPC address of personaldatad (env PDCTL_ADDR)")
	pf.StringVar(&a.tokenFile, "token-file", envOr("PDCTL_TOKEN_FILE", "data/operator.token"), "file holding the bearer token (env PDCTL_TOKEN_FILE)")
	pf.StringVar(&a.caFile, "ca", "", "CA file (PEM) to verify the server: enables TLS")
	pf.StringVar(&a.cert, "cert", "", "client certificate (PEM) for mutual TLS, instead of a token")
	pf.StringVar(&a.key, "key", "", "client key (PEM) for --cert")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(
		a.whoamiCommand(),
		a.principalCommand(),
		a.keysCommand(),
		a.subjectCommand(),
		a.requestsCommand(),
		a.outboxCommand(),
		a.agreementsCommand(),
		a.registerCommand(),
		a.breachesCommand(),
		a.auditCommand(),
		a.backupCommand(),
	)
	return root
}

// group is a command that only holds others: alone it prints its help,
// with an unknown subcommand it fails.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use + " <command>",
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q (see '%s --help')", args[0], c.CommandPath(), c.CommandPath())
			}
			return c.Help()
		},
	}
	c.AddCommand(subs...)
	return c
}

// longFlagsWithOneDash rewrites -name and -name=value as --name for every
// long flag some command defines, as the flag package read them, so command
// lines written for pdctl before cobra mean what they meant. A flag's value
// is never rewritten.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	takesValue := map[string]bool{"help": false}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		note := func(f *pflag.Flag) { takesValue[f.Name] = f.NoOptDefVal == "" }
		c.Flags().VisitAll(note)
		c.PersistentFlags().VisitAll(note)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(out, args[i:]...)
		}
		name, hasValue := strings.CutPrefix(arg, "--")
		if !hasValue {
			if len(arg) < 3 || arg[0] != '-' {
				out = append(out, arg)
				continue
			}
			name = arg[1:]
		}
		name, _, inline := strings.Cut(name, "=")
		value, known := takesValue[name]
		if !known {
			out = append(out, arg)
			continue
		}
		out = append(out, "--"+strings.TrimLeft(arg, "-"))
		if value && !inline && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// conn is how to reach the server.
type conn struct {
	addr, tokenFile   string
	caFile, cert, key string
}

func (c conn) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no certificate", c.caFile)
		}
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if c.cert != "" {
			kp, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(c.explainUnaryFailure), grpc.WithChainStreamInterceptor(c.explainStreamFailure)}
	if c.cert == "" {
		b, err := os.ReadFile(c.tokenFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no token file %s: give the file holding your bearer token with --token-file FILE or PDCTL_TOKEN_FILE=FILE "+
				"(the server writes the first operator's token to operator.token in its data directory), or a client certificate with --cert and --key", c.tokenFile)
		}
		if err != nil {
			return nil, fmt.Errorf("read the token file (--token-file, PDCTL_TOKEN_FILE): %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: strings.TrimSpace(string(b)), secure: c.caFile != ""}))
	}
	cc, err := grpc.NewClient(c.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("--addr %q (PDCTL_ADDR): %w", c.addr, err)
	}
	return cc, nil
}

// unreachable is a call's failure to reach the server at all, as opposed to
// the server's own UNAVAILABLE (a full disk) on a working connection: it
// names the address tried and how to give another. The gRPC status stays
// readable (status.Code) through Unwrap.
type unreachable struct {
	addr, hint string
	err        error
}

func (u *unreachable) Error() string {
	cause := status.Convert(u.err).Message()
	// The transport's message nests its causes ("connection error: desc =
	// \"transport: Error while dialing: dial tcp …: connect: connection
	// refused\""): the innermost says what happened.
	if i := strings.LastIndex(cause, ": "); i >= 0 {
		cause = cause[i+2:]
	}
	if cause == "produced zero addresses" {
		cause = "the name resolves to no address"
	}
	return fmt.Sprintf("cannot reach personaldatad at %s (%s): %s", u.addr, u.hint, strings.Trim(cause, `"`))
}

func (u *unreachable) Unwrap() error { return u.err }

// explain turns a failure of the connection (UNAVAILABLE or a deadline met
// while not connected) into an unreachable error.
func (c conn) explain(cc *grpc.ClientConn, err error) error {
	code := status.Code(err)
	if err == nil || code != codes.Unavailable && code != codes.DeadlineExceeded || cc.GetState() == connectivity.Ready {
		return err
	}
	hint := "is it running? give its gRPC address with --addr HOST:PORT or PDCTL_ADDR"
	if c.caFile == "" {
		hint += "; --ca FILE if it serves TLS"
	}
	return &unreachable{addr: c.addr, hint: hint, err: err}
}

func (c conn) explainUnaryFailure(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return c.explain(cc, invoker(ctx, method, req, reply, cc, opts...))
}

func (c conn) explainStreamFailure(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, c.explain(cc, err)
	}
	return &explainedStream{ClientStream: s, c: c, cc: cc}, nil
}

// explainedStream explains the failures of a stream's messages, where a
// server stream's first failure to connect shows.
type explainedStream struct {
	grpc.ClientStream
	c  conn
	cc *grpc.ClientConn
}

func (s *explainedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == io.EOF {
		return err
	}
	return s.c.explain(s.cc, err)
}

// bearer sends the token with every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity allows plaintext only when TLS is not configured
// (loopback, as the server's default).
func (b bearer) RequireTransportSecurity() bool { return b.secure }

// printJSON prints a reply as indented JSON with the protos' field names.
func printJSON(out io.Writer, m proto.Message, err error) error {
	if err != nil {
		return err
	}
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// enumValue reads "billing-system" or "BILLING_SYSTEM" as an enum value.
func enumValue(values map[string]int32, prefix, s string) (int32, error) {
	name := prefix + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(strings.ToUpper(s), prefix), "-", "_"))
	v, ok := values[name]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown value %q", s)
	}
	return v, nil
}

// enumNames are an enum's values as written on the command line
// ("billing-system"), for help and completion.
func enumNames(values map[string]int32, prefix string) []string {
	names := make([]string, 0, len(values))
	for name, v := range values {
		if v != 0 {
			names = append(names, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, prefix), "_", "-")))
		}
	}
	slices.Sort(names)
	return names
}

// completeFrom completes a flag's comma-separated values from names.
func completeFrom(names []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		done, _ := cutLast(toComplete, ",")
		var out []string
		for _, n := range names {
			if done != "" {
				n = done + "," + n
			}
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

func cutLast(s, sep string) (before, after string) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):]
	}
	return "", s
}

func idempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "pdctl-" + hex.EncodeToString(b)
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
