// Command personaldatad serves the PersonalDataService over gRPC and REST.
// With no MongoDB URI it runs the embedded store in its data directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/example/personaldata/server"
	"github.com/example/personaldata/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "personaldatad:", err)
		os.Exit(1)
	}
}

// config is the command line; each flag has an environment variable of the
// same name in upper case with a PERSONALDATA_ prefix, read as its default.
type config struct {
	grpcAddr, httpAddr string
	mongoURI, dataDir  string
	database, logLevel string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("personaldatad", flag.ContinueOnError)
	str := func(p *string, name, def, usage string) {
		env := "PERSONALDATA_" + envName(name)
		if v, ok := os.LookupEnv(env); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	str(&c.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address")
	str(&c.httpAddr, "http-addr", "127.0.0.1:8080", "REST gateway, OpenAPI, metrics and health listen address")
	str(&c.mongoURI, "mongo-uri", "", "MongoDB URI; empty runs the embedded store in -data-dir")
	str(&c.dataDir, "data-dir", "data", "directory of the embedded store")
	str(&c.database, "database", "personaldata", "database name")
	str(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return c, fs.Parse(args)
}

// envName turns a flag name into the tail of its environment variable.
func envName(flagName string) string {
	b := []byte(flagName)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func realMain(ctx context.Context, args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv, err := server.New(ctx, server.Config{
		GRPCAddr: c.grpcAddr,
		HTTPAddr: c.httpAddr,
		Store:    store.Config{URI: c.mongoURI, DataDir: c.dataDir, Database: c.database},
	}, log)
	if err != nil {
		return err
	}
	storeKind := "mongodb"
	if c.mongoURI == "" {
		storeKind = "embedded (" + c.dataDir + ")"
	}
	log.Info("listening",
		slog.String("grpc", srv.GRPCAddr()),
		slog.String("http", "http://"+srv.HTTPAddr()),
		slog.String("openapi", "http://"+srv.HTTPAddr()+"/openapi.json"),
		slog.String("metrics", "http://"+srv.HTTPAddr()+"/metrics"),
		slog.String("store", storeKind),
		slog.String("authentication", "none yet: listen on loopback only"))
	err = srv.Serve(ctx)
	log.Info("stopped")
	return err
}
