package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"gocloud.dev/secrets"
	_ "gocloud.dev/secrets/hashivault"   // hashivault:// (Vault's transit engine)
	_ "gocloud.dev/secrets/localsecrets" // base64key:// (tests, development)

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
)

func (a *app) keysCommand() *cobra.Command {
	c := group("keys", "Master key versions and the rotation of data keys (operators)",
		a.keysCreateCommand(),
		a.keysAddVersionCommand(),
		a.keysRotateCommand(),
		a.keysRemoveVersionCommand(),
	)
	c.Long = `Rotate the master keys while serving: add a version to the key file (on the
server's machine; every replica re-reads it), rotate (the server re-wraps every
data key under the newest version), then remove the old version.`
	c.Example = `  pdctl keys add-version --key-file data/keyring.json
  pdctl keys rotate
  pdctl keys remove-version --key-file data/keyring.json --version 1`
	return c
}

// keyFile is the master key file the file-only commands change, and the
// key service that wraps it, if any (as the server's -master-key-keeper).
type keyFile struct{ path, keeper string }

func (k *keyFile) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.path, "key-file", "data/keyring.json", "the master key file")
	cmd.Flags().StringVar(&k.keeper, "master-key-keeper", envOr("PERSONALDATA_MASTER_KEY_KEEPER", ""),
		"URL of the key service that wraps the file, as given to the server (hashivault://KEY; env PERSONALDATA_MASTER_KEY_KEEPER)")
	_ = cmd.MarkFlagFilename("key-file", "json")
}

// change runs fn on the plain file, or through the key service.
func (k *keyFile) change(ctx context.Context, plain func(string) error, wrapped func(context.Context, envelope.WrappedFile) error) error {
	if k.keeper == "" {
		return plain(k.path)
	}
	keeper, err := secrets.OpenKeeper(ctx, k.keeper)
	if err != nil {
		return fmt.Errorf("--master-key-keeper: %w", err)
	}
	defer keeper.Close()
	return wrapped(ctx, envelope.WrappedFile{Path: k.path, Wrapper: keeper})
}

// keysCreateCommand makes the key file for a deployment on MongoDB, where
// the server never generates one (replicas must share the same keys).
func (a *app) keysCreateCommand() *cobra.Command {
	var file keyFile
	cmd := &cobra.Command{
		Use:   "create [--key-file FILE] [--master-key-keeper URL]",
		Short: "Create a new master key file, wrapped by the key service when one is given (no server needed); never replaces one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var created bool
			err := file.change(cmd.Context(),
				func(path string) (err error) { _, created, err = envelope.LoadOrCreate(path); return err },
				func(ctx context.Context, f envelope.WrappedFile) (err error) {
					_, created, err = f.LoadOrCreate(ctx)
					return err
				})
			if err != nil {
				return err
			}
			if !created {
				return fmt.Errorf("%s exists already: it was left as it is", file.path)
			}
			_, err = fmt.Fprintf(a.out, "created %s; give every replica this file (and the key service), and back it up apart from the data\n", file.path)
			return err
		},
	}
	file.flags(cmd)
	return cmd
}

func (a *app) keysAddVersionCommand() *cobra.Command {
	var file keyFile
	cmd := &cobra.Command{
		Use:   "add-version [--key-file FILE] [--master-key-keeper URL]",
		Short: "Add a master key version to the key file and make it current (no server needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v uint32
			err := file.change(cmd.Context(),
				func(path string) (err error) { v, err = envelope.AddVersion(path); return err },
				func(ctx context.Context, f envelope.WrappedFile) (err error) { v, err = f.AddVersion(ctx); return err })
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "master key version %d added and current; now run: pdctl keys rotate\n", v)
			return err
		},
	}
	file.flags(cmd)
	return cmd
}

func (a *app) keysRemoveVersionCommand() *cobra.Command {
	var file keyFile
	var version uint
	cmd := &cobra.Command{
		Use:   "remove-version --version N [--key-file FILE] [--master-key-keeper URL]",
		Short: "Remove a master key version from the key file, after a finished rotation (no server needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := file.change(cmd.Context(),
				func(path string) error { return envelope.RemoveVersion(path, uint32(version)) },
				func(ctx context.Context, f envelope.WrappedFile) error { return f.RemoveVersion(ctx, uint32(version)) })
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "master key version %d removed\n", version)
			return err
		},
	}
	file.flags(cmd)
	cmd.Flags().UintVar(&version, "version", 0, "the version to remove")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func (a *app) keysRotateCommand() *cobra.Command {
	var after string
	cmd := &cobra.Command{
		Use:   "rotate [--resume-after ID]",
		Short: "Re-wrap every data key under the current master key version, with progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cc, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 24*time.Hour)
			defer cancel()
			stream, err := pdv1.NewKeyServiceClient(cc).RotateDataKeys(ctx, &pdv1.RotateDataKeysRequest{ResumeAfter: after})
			if err != nil {
				return err
			}
			last := after
			for {
				p, err := stream.Recv()
				if err != nil {
					return fmt.Errorf("%w (resume with: pdctl keys rotate --resume-after %q)", err, last)
				}
				last = p.GetResumeAfter()
				fmt.Fprintf(a.out, "version %d: %d of %d keys, %d re-wrapped\n", p.GetCurrentVersion(), p.GetDone(), p.GetTotal(), p.GetRewrapped())
				if p.GetFinished() {
					_, err := fmt.Fprintln(a.out, "finished: every data key is wrapped under the current version")
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&after, "resume-after", "", "continue after this subject id (printed when a rotation is cut)")
	return cmd
}
