package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/example/personaldata/service/auth"
)

// loadTLS builds the TLS configuration of both listeners, or nil without a
// certificate. With a client CA, a client certificate it signed
// authenticates its holder; clients without one use bearer tokens.
func loadTLS(c TLSConfig) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	certs, err := newCertReloader(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s holds no certificate", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// randomSecret is the per-process secret the gateway shows the gRPC server.
func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// gatewaySecretUnary and gatewaySecretStream attach the gateway's secret to
// every call it makes.
func gatewaySecretUnary(secret string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, auth.GatewaySecretKey, secret), method, req, reply, cc, opts...)
	}
}

func gatewaySecretStream(secret string) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(metadata.AppendToOutgoingContext(ctx, auth.GatewaySecretKey, secret), desc, cc, method, opts...)
	}
}

// forwardClientCertificate passes the identity of a verified client
// certificate on the HTTPS connection to the gRPC server. Whatever a client
// sends in the header of that name is replaced, never passed on.
func forwardClientCertificate(_ context.Context, r *http.Request) metadata.MD {
	md := metadata.MD{}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		md.Set(auth.GatewayIdentityKey, auth.CertificateIdentity(r.TLS.VerifiedChains[0][0]))
	} else {
		md.Set(auth.GatewayIdentityKey, "")
	}
	return md
}

// refuseInternalHeaders keeps clients from setting the metadata the gateway
// itself sets ("Grpc-Metadata-X-Pd-..."); other headers pass as by default.
func refuseInternalHeaders(key string) (string, bool) {
	if strings.HasPrefix(strings.ToLower(key), strings.ToLower(runtime.MetadataHeaderPrefix)+"x-pd-") {
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// certReloader serves the certificate in its files, read again when they
// change (looked at, at most every certCheckInterval, by a handshake), so a
// renewed certificate is used without a restart. A pair that does not load
// (a renewal half written) keeps the one in use until it does.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	modTime           time.Time
	checked           time.Time
}

const certCheckInterval = 2 * time.Second

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return r, nil
}

// load reads the pair; the caller holds r.mu, or r is not shared yet.
func (r *certReloader) load() error {
	mod, err := newestModTime(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.modTime = &cert, mod
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= certCheckInterval {
		r.checked = time.Now()
		if mod, err := newestModTime(r.certFile, r.keyFile); err == nil && !mod.Equal(r.modTime) {
			_ = r.load() // on failure the old certificate stays
		}
	}
	return r.cert, nil
}

func newestModTime(files ...string) (time.Time, error) {
	var newest time.Time
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return time.Time{}, err
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	return newest, nil
}
