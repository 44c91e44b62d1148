package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// testCA issues certificates for the mutual-TLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for cn, for a server (with 127.0.0.1) or a client.
func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	srvCert := ca.issue(t, "personaldata", true)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvCert.PrivateKey)
	writePEM(t, filepath.Join(dir, "server.crt"), "CERTIFICATE", srvCert.Certificate[0])
	writePEM(t, filepath.Join(dir, "server.key"), "PRIVATE KEY", keyDER)
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", ca.cert.Raw)

	srv, _ := serve(t, dir, server.Config{
		Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "mtls"},
		TLS:   server.TLSConfig{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"), ClientCAFile: filepath.Join(dir, "ca.crt")},
	}, slog.New(slog.DiscardHandler))

	dial := func(certs ...tls.Certificate) *grpc.ClientConn {
		conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.pool, Certificates: certs})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// The operator, by bearer token over TLS, creates "billing".
	createPrincipal(t, grpcCaller{dial(), readToken(t, filepath.Join(dir, "operator.token"))}, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil)

	// gRPC with billing's client certificate and no token.
	billing := grpcCaller{dial(ca.issue(t, "billing", false)), ""}
	who := call(t, billing, principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{})
	if who.GetPrincipal().GetPrincipalId() != "billing" || who.GetMethod() != "mtls" {
		t.Errorf("GetCaller with a client certificate: %v", who)
	}
	// A certificate naming no principal, no certificate, or a forged
	// identity header: all unauthenticated.
	callErr(t, grpcCaller{dial(ca.issue(t, "stranger", false)), ""}, principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}, codes.Unauthenticated)
	forged := metadata.AppendToOutgoingContext(context.Background(), "x-pd-client-cert-identity", "billing")
	if err := dial().Invoke(forged, "/"+principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("forged identity over gRPC: %v", err)
	}

	// REST over HTTPS with the client certificate, through the gateway.
	restGet := func(certs []tls.Certificate, header map[string]string) (int, string) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: certs}}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+srv.HTTPAddr()+"/v1/caller", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := restGet([]tls.Certificate{ca.issue(t, "billing", false)}, nil)
	var got pdv1.GetCallerResponse
	if code != http.StatusOK || protojson.Unmarshal([]byte(body), &got) != nil || got.GetPrincipal().GetPrincipalId() != "billing" || got.GetMethod() != "mtls" {
		t.Errorf("REST with a client certificate: %d %s", code, body)
	}
	if code, _ := restGet(nil, map[string]string{"X-Pd-Client-Cert-Identity": "billing", "Grpc-Metadata-X-Pd-Client-Cert-Identity": "billing"}); code != http.StatusUnauthorized {
		t.Errorf("REST with a forged identity header: HTTP %d, want 401", code)
	}
	if code, body := restGet(nil, nil); code != http.StatusUnauthorized || strings.Contains(body, "billing") {
		t.Errorf("REST without credentials: %d %s", code, body)
	}
}

// A renewed certificate is served without a restart.
func TestCertificateRenewedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	write := func(cert tls.Certificate, at time.Time) {
		keyDER, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		writePEM(t, filepath.Join(dir, "server.crt"), "CERTIFICATE", cert.Certificate[0])
		writePEM(t, filepath.Join(dir, "server.key"), "PRIVATE KEY", keyDER)
		for _, f := range []string{"server.crt", "server.key"} {
			if err := os.Chtimes(filepath.Join(dir, f), at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	first := ca.issue(t, "personaldata", true)
	write(first, time.Now().Add(-time.Minute))
	srv, _ := serve(t, dir, server.Config{
		Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "renew"},
		TLS:   server.TLSConfig{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")},
	}, slog.New(slog.DiscardHandler))
	served := func() []byte {
		conn, err := tls.Dial("tcp", srv.HTTPAddr(), &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	if !bytes.Equal(served(), first.Certificate[0]) {
		t.Fatal("not the first certificate")
	}
	renewed := ca.issue(t, "personaldata", true)
	write(renewed, time.Now())
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(served(), renewed.Certificate[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate is not served")
		}
		time.Sleep(250 * time.Millisecond)
	}
}
