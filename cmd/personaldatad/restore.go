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
	"github.com/example/personaldata/store"
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
	var replay bool
	var ledgers ledgerFlags
	var backupLedgerOnly bool
	c, err := parseFlags(args, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "restore: the backup file (from pdctl backup create)")
		fs.BoolVar(&replay, "replay-erasures", false, "restore: with -mongo-uri, re-apply the erasures of the ledgers to a database restored with mongorestore or a storage snapshot, before any server serves it")
		fs.Var(&ledgers, "ledger", "restore: an erasure ledger to re-apply besides the backup's and the live one (-erasure-ledger); may be repeated")
		fs.BoolVar(&backupLedgerOnly, "backup-ledger-only", false, "restore: go on when no ledger but the backup's is found (erasures made after the backup are then not re-applied)")
	})
	if err != nil {
		return err
	}
	log := newLogger(os.Stderr, slog.LevelInfo)
	for _, u := range c.unknownEnv {
		u.warn(log)
	}
	if replay {
		if from != "" {
			return errors.New("restore: --replay-erasures replays the ledgers on a restored database; it takes no --from")
		}
		if c.mongoURI == "" {
			return errors.New("restore: --replay-erasures is for -mongo-uri deployments; an embedded store's backup is restored with --from, which replays the ledgers itself")
		}
		keeper, closeKeeper, err := openKeeper(ctx, c.keeperURL)
		if err != nil {
			return err
		}
		defer closeKeeper()
		rep, err := server.ReplayErasures(ctx, server.ReplayConfig{
			Store:         store.Config{URI: c.mongoURI, Database: c.database},
			Keys:          server.KeysConfig{MasterKeys: []byte(os.Getenv("PERSONALDATA_MASTER_KEYS")), KeyFile: c.keyFile, Keeper: keeper},
			ErasureLedger: c.erasureLedger, Ledgers: ledgers,
		}, log)
		if err != nil {
			return err
		}
		return printReport(rep)
	}
	if from == "" {
		return errors.New("restore: --from: give the backup file")
	}
	if c.mongoURI != "" {
		return errors.New("restore: -mongo-uri: restore a MongoDB deployment with mongorestore or its storage snapshot, then run restore --replay-erasures (see cmd/personaldatad/README.md, Backups and restore)")
	}
	keeper, closeKeeper, err := openKeeper(ctx, c.keeperURL)
	if err != nil {
		return err
	}
	defer closeKeeper()
	rep, err := server.Restore(ctx, server.RestoreConfig{
		From: from, DataDir: c.dataDir, Database: c.database,
		Keys:          server.KeysConfig{MasterKeys: []byte(os.Getenv("PERSONALDATA_MASTER_KEYS")), KeyFile: c.keyFile, Keeper: keeper},
		ErasureLedger: c.erasureLedger, Ledgers: ledgers, BackupLedgerOnly: backupLedgerOnly, Version: server.Version(),
	}, log)
	if err != nil {
		return err
	}
	return printReport(rep)
}

// printReport writes the report on stdout, as JSON.
func printReport(rep *server.RestoreReport) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// openKeeper opens the key service of -master-key-keeper, if any.
func openKeeper(ctx context.Context, url string) (envelope.Wrapper, func(), error) {
	if url == "" {
		return nil, func() {}, nil
	}
	k, err := secrets.OpenKeeper(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("-master-key-keeper: %w", err)
	}
	return k, func() { _ = k.Close() }, nil
}
