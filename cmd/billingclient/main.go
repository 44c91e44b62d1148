// Command billingclient is what the billing system needs to call
// personaldata: it imports only the stub module (github.com/example/personaldata/gen),
// dials with a bearer token (over TLS when given a CA), lets gRPC retry what is
// safe to retry, and reads one subject's INVOICING view.
//
//	go run . -subject <subject id>   # token from $PERSONALDATA_TOKEN
//
// It is a module of its own so that its module graph is exactly what a caller
// gets: grpc, protobuf, the gateway runtime and genproto, no server code.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// serviceConfig retries UNAVAILABLE (the server or its store briefly down)
// on every method: it is returned before anything is written. ABORTED (a lost
// race) is retried only on the calls that carry an idempotency key, where the
// server answers a repeat with the first call's result instead of writing
// twice. Reads need no key and are never ABORTED.
const serviceConfig = `{
  "methodConfig": [
    {
      "name": [{"service": "personaldata.v1.PersonalDataService"}],
      "retryPolicy": {
        "maxAttempts": 4, "initialBackoff": "0.2s", "maxBackoff": "2s",
        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]
      }
    },
    {
      "name": [
        {"service": "personaldata.v1.PersonalDataService", "method": "CreateSubject"},
        {"service": "personaldata.v1.PersonalDataService", "method": "RectifySubject"},
        {"service": "personaldata.v1.PersonalDataService", "method": "AddHistoryEntry"}
      ],
      "retryPolicy": {
        "maxAttempts": 4, "initialBackoff": "0.2s", "maxBackoff": "2s",
        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"]
      }
    }
  ]
}`

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "personaldata gRPC address")
	caFile := flag.String("ca", "", "PEM CA that signed the server's certificate (TLS); empty: plaintext, for loopback only")
	subject := flag.String("subject", "", "subject id to read")
	flag.Parse()
	if err := run(*addr, *caFile, *subject, os.Getenv("PERSONALDATA_TOKEN")); err != nil {
		log.Fatal(err)
	}
}

func run(addr, caFile, subject, token string) error {
	if subject == "" || token == "" {
		return errors.New("need -subject and $PERSONALDATA_TOKEN")
	}
	transport := insecure.NewCredentials()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("no certificate in the CA file")
		}
		transport = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(bearer{token: token, tls: caFile != ""}),
		grpc.WithDefaultServiceConfig(serviceConfig),
	)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pdv1.NewPersonalDataServiceClient(conn).GetSubjectForPurpose(ctx, &pdv1.GetSubjectForPurposeRequest{
		SubjectId: subject,
		Purpose:   pdv1.Purpose_PURPOSE_INVOICING,
	})
	if err != nil {
		// A restricted or erased subject is FAILED_PRECONDITION: stop invoicing, do not retry.
		return fmt.Errorf("invoicing view: %w", err)
	}
	p := resp.GetPerson()
	fmt.Printf("subject %s version %d, fields %v\n", resp.GetSubjectId(), resp.GetVersion(), resp.GetFields())
	fmt.Printf("invoice to %s %s <%s>\n", p.GetGivenName(), p.GetFamilyName(), p.GetEmail())
	return nil
}

// bearer sends the token as gRPC metadata on every call.
type bearer struct {
	token string
	tls   bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false only so that the example runs against the
// README's plaintext loopback server; with -ca the token travels over TLS.
func (b bearer) RequireTransportSecurity() bool { return b.tls }
