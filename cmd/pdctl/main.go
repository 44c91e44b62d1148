// Command pdctl is the operators' tool: it manages principals (who may call
// personaldatad, for which controllers, purposes and RPCs) through the
// PrincipalService, over gRPC.
//
//	pdctl [-addr 127.0.0.1:50051] [-token-file data/operator.token] <command> [flags]
//
// Commands:
//
//	whoami
//	principal create -id ID -kind KIND -tenant T[,T...] [-purpose P,...] [-rpc METHOD,...] [-description TEXT]
//	principal get -id ID
//	principal list
//	principal update -id ID [-tenant T,...] [-purpose P,...] [-rpc METHOD,...]
//	principal issue-token -id ID
//	principal revoke -id ID [-reason TEXT]
//	keys add-version -key-file FILE       (on the server's machine: adds a master key version)
//	keys rotate [-resume-after ID]          (re-wraps every data key under the newest version)
//	keys remove-version -key-file FILE -version N   (after a finished rotation)
//	outbox [-ack]                           (prints the messages to rights requesters; -ack as a mailer would)
//	register                                (the register of processing activities, GDPR Art. 30, as JSON)
//
// KIND is billing-system, domain-registration, support-staff,
// customer-controller, operator or mailer; P is a purpose such as invoicing. A new
// token is printed once, on its own line, and is not kept anywhere else.
// "principal update" changes only the grants given as flags; -purpose "" or
// -rpc "" sets that grant back to its kind's default.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pdctl:", err)
		os.Exit(1)
	}
}

// conn is how to reach the server.
type conn struct {
	addr, tokenFile, token string
	caFile, cert, key      string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c conn
	fs := flag.NewFlagSet("pdctl", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", envOr("PDCTL_ADDR", "127.0.0.1:50051"), "gRPC address (env PDCTL_ADDR)")
	fs.StringVar(&c.tokenFile, "token-file", envOr("PDCTL_TOKEN_FILE", "data/operator.token"), "file holding the bearer token (env PDCTL_TOKEN_FILE)")
	fs.StringVar(&c.caFile, "ca", "", "CA file (PEM) to verify the server: enables TLS")
	fs.StringVar(&c.cert, "cert", "", "client certificate (PEM) for mutual TLS, instead of a token")
	fs.StringVar(&c.key, "key", "", "client key (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return errors.New("usage: pdctl [flags] whoami | principal <create|get|list|update|issue-token|revoke> | keys <add-version|rotate|remove-version> | outbox [flags] | register")
	}
	if rest[0] == "keys" && len(rest) > 1 && rest[1] != "rotate" {
		return keyFileCommand(rest[1], rest[2:], out) // the file only, no server
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	if rest[0] == "keys" {
		return rotate(ctx, pdv1.NewKeyServiceClient(cc), rest[2:], out)
	}
	if rest[0] == "outbox" {
		return outboxCommand(ctx, pdv1.NewRequesterOutboxServiceClient(cc), rest[1:], out)
	}
	if rest[0] == "register" {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		res, err := pdv1.NewProcessingRegisterServiceClient(cc).GetProcessingRegister(ctx, &pdv1.GetProcessingRegisterRequest{})
		return print(out, res, err)
	}
	client := pdv1.NewPrincipalServiceClient(cc)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if rest[0] == "whoami" {
		res, err := client.GetCaller(ctx, &pdv1.GetCallerRequest{})
		return print(out, res, err)
	}
	if rest[0] != "principal" || len(rest) < 2 {
		return fmt.Errorf("unknown command %q", strings.Join(rest, " "))
	}
	return principalCommand(ctx, client, rest[1], rest[2:], out)
}

func principalCommand(ctx context.Context, client pdv1.PrincipalServiceClient, cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("principal "+cmd, flag.ContinueOnError)
	id := fs.String("id", "", "principal id")
	kind := fs.String("kind", "", "billing-system, domain-registration, support-staff, customer-controller, operator or mailer")
	tenants := fs.String("tenant", "", `controllers it acts for, comma-separated ("company", customer ids; "*" for operators)`)
	purposes := fs.String("purpose", "", "purposes, comma-separated (invoicing, service-delivery, account-communication, support, domain-registration); default of its kind when empty")
	rpcs := fs.String("rpc", "", "full RPC method names, comma-separated; default of its kind when empty")
	desc := fs.String("description", "", "what it is")
	reason := fs.String("reason", "", "why it is revoked")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" && cmd != "list" {
		return errors.New("-id is required")
	}
	key := idempotencyKey()
	switch cmd {
	case "create":
		k, err := enumValue(pdv1.PrincipalKind_value, "PRINCIPAL_KIND_", *kind)
		if err != nil {
			return fmt.Errorf("-kind: %w", err)
		}
		ps, err := purposeList(*purposes)
		if err != nil {
			return err
		}
		res, err := client.CreatePrincipal(ctx, &pdv1.CreatePrincipalRequest{IdempotencyKey: key, Principal: &pdv1.Principal{
			PrincipalId: *id, Kind: pdv1.PrincipalKind(k), TenantIds: list(*tenants), Purposes: ps, Rpcs: list(*rpcs), Description: *desc,
		}})
		return printToken(out, res.GetPrincipal(), res.GetToken(), err)
	case "get":
		res, err := client.GetPrincipal(ctx, &pdv1.GetPrincipalRequest{PrincipalId: *id})
		return print(out, res, err)
	case "list":
		token := ""
		for {
			res, err := client.ListPrincipals(ctx, &pdv1.ListPrincipalsRequest{PageToken: token})
			if err := print(out, res, err); err != nil {
				return err
			}
			if token = res.GetNextPageToken(); token == "" {
				return nil
			}
		}
	case "update":
		// Only the grants given as flags change: the mask names them.
		grants := map[string]string{"tenant": "tenant_ids", "purpose": "purposes", "rpc": "rpcs"}
		mask := &fieldmaskpb.FieldMask{}
		fs.Visit(func(f *flag.Flag) {
			if path, ok := grants[f.Name]; ok {
				mask.Paths = append(mask.Paths, path)
			}
		})
		if len(mask.Paths) == 0 {
			return errors.New("give the grants to change: -tenant, -purpose and/or -rpc")
		}
		ps, err := purposeList(*purposes)
		if err != nil {
			return err
		}
		cur, err := client.GetPrincipal(ctx, &pdv1.GetPrincipalRequest{PrincipalId: *id})
		if err != nil {
			return err
		}
		res, err := client.UpdatePrincipal(ctx, &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: key, PrincipalId: *id, ExpectedVersion: cur.GetPrincipal().GetVersion(),
			TenantIds: list(*tenants), Purposes: ps, Rpcs: list(*rpcs), UpdateMask: mask,
		})
		return print(out, res, err)
	case "issue-token":
		res, err := client.IssueToken(ctx, &pdv1.IssueTokenRequest{IdempotencyKey: key, PrincipalId: *id})
		return printToken(out, res.GetPrincipal(), res.GetToken(), err)
	case "revoke":
		res, err := client.RevokePrincipal(ctx, &pdv1.RevokePrincipalRequest{IdempotencyKey: key, PrincipalId: *id, Reason: *reason})
		return print(out, res, err)
	}
	return fmt.Errorf("unknown command principal %s", cmd)
}

// keyFileCommand changes the master key file itself; the servers re-read it.
func keyFileCommand(cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("keys "+cmd, flag.ContinueOnError)
	file := fs.String("key-file", "data/keyring.json", "the master key file")
	version := fs.Uint("version", 0, "the version to remove")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch cmd {
	case "add-version":
		v, err := envelope.AddVersion(*file)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "master key version %d added and current; now run: pdctl keys rotate\n", v)
		return err
	case "remove-version":
		if err := envelope.RemoveVersion(*file, uint32(*version)); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "master key version %d removed\n", *version)
		return err
	}
	return fmt.Errorf("unknown command keys %s", cmd)
}

// rotate runs a rotation and prints its progress; interrupted, it prints the
// -resume-after to continue with.
func rotate(ctx context.Context, client pdv1.KeyServiceClient, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	after := fs.String("resume-after", "", "continue after this subject id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 24*time.Hour)
	defer cancel()
	stream, err := client.RotateDataKeys(ctx, &pdv1.RotateDataKeysRequest{ResumeAfter: *after})
	if err != nil {
		return err
	}
	last := *after
	for {
		p, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("%w (resume with: pdctl keys rotate -resume-after %q)", err, last)
		}
		last = p.GetResumeAfter()
		fmt.Fprintf(out, "version %d: %d of %d keys, %d re-wrapped\n", p.GetCurrentVersion(), p.GetDone(), p.GetTotal(), p.GetRewrapped())
		if p.GetFinished() {
			_, err := fmt.Fprintln(out, "finished: every data key is wrapped under the current version")
			return err
		}
	}
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
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.cert == "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: strings.TrimSpace(string(b)), secure: c.caFile != ""}))
	}
	return grpc.NewClient(c.addr, opts...)
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

func print(out io.Writer, m proto.Message, err error) error {
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

func printToken(out io.Writer, p *pdv1.Principal, token string, err error) error {
	if err := print(out, p, err); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "token (shown once; store it as a secret):\n%s\n", token)
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

func purposeList(s string) ([]pdv1.Purpose, error) {
	var out []pdv1.Purpose
	for _, p := range list(s) {
		v, err := enumValue(pdv1.Purpose_value, "PURPOSE_", p)
		if err != nil {
			return nil, fmt.Errorf("-purpose: %w", err)
		}
		out = append(out, pdv1.Purpose(v))
	}
	return out, nil
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

// outboxCommand prints the messages waiting for the mailer, for
// development: with -ack it acknowledges each one printed, as the mailer
// does once it has sent it (it is then removed).
func outboxCommand(ctx context.Context, client pdv1.RequesterOutboxServiceClient, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	ack := fs.Bool("ack", false, "acknowledge each message printed (it is removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	token := ""
	for {
		res, err := client.ListOutboxMessages(ctx, &pdv1.ListOutboxMessagesRequest{PageToken: token})
		if err != nil {
			return err
		}
		for _, m := range res.GetMessages() {
			fmt.Fprintf(out, "id: %s\nkind: %s\nto: %s (%s)\nsubject: %s\n\n%s\n---\n",
				m.GetMessageId(), m.GetKind(), m.GetTo(), m.GetChannel(), m.GetSubject(), m.GetBody())
			if *ack {
				if _, err := client.AcknowledgeOutboxMessage(ctx, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}); err != nil {
					return err
				}
			}
		}
		if token = res.GetNextPageToken(); token == "" {
			return nil
		}
	}
}
