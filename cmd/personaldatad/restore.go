package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"gocloud.dev/secrets"

	"github.com/example/personaldata/cmd/personaldatad/server"
	"github.com/example/personaldata/store/envelope"
)

// ledgerFlags collects the repeated --ledger.
type ledgerFlags []string

func (l *ledgerFlags) String() string     { return strings.Join(*l, ",") }
func (l *ledgerFlags) Set(v string) error { *l = append(*l, v); return nil }

// restoreMain is `personaldatad restore --from FILE [--ledger FILE]...`,
// with the server's own flags for the data directory, the database, the
// keys and the erasure ledger. It prints the report (JSON: counts and
// ids) on stdout.
func restoreMain(ctx context.Context, args []string) error {
	var from string
	var ledgers ledgerFlags
	c, err := parseFlags(args, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "restore: the backup file (from pdctl backup create)")
		fs.Var(&ledgers, "ledger", "restore: an erasure ledger to re-apply besides the backup's and the live one (-erasure-ledger); may be repeated")
	})
	if err != nil {
		return err
	}
	if from == "" {
		return errors.New("restore: --from: give the backup file")
	}
	if c.mongoURI != "" {
		return errors.New("restore: -mongo-uri: restore a MongoDB deployment with mongorestore or its storage snapshot, then replay the erasure ledger (see the README's Backups)")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var keeper envelope.Wrapper
	if c.keeperURL != "" {
		k, err := secrets.OpenKeeper(ctx, c.keeperURL)
		if err != nil {
			return fmt.Errorf("-master-key-keeper: %w", err)
		}
		defer k.Close()
		keeper = k
	}
	rep, err := server.Restore(ctx, server.RestoreConfig{
		From: from, DataDir: c.dataDir, Database: c.database,
		Keys:          server.KeysConfig{MasterKeys: []byte(os.Getenv("PERSONALDATA_MASTER_KEYS")), KeyFile: c.keyFile, Keeper: keeper},
		ErasureLedger: c.erasureLedger, Ledgers: ledgers, Version: server.Version(),
	}, log)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
