package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
)

func (a *app) keysCommand() *cobra.Command {
	c := group("keys", "Master key versions and the rotation of data keys (operators)",
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

// keyFileFlag is the master key file the file-only commands change.
func keyFileFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVar(file, "key-file", "data/keyring.json", "the master key file")
	_ = cmd.MarkFlagFilename("key-file", "json")
}

func (a *app) keysAddVersionCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "add-version [--key-file FILE]",
		Short: "Add a master key version to the key file and make it current (no server needed)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v, err := envelope.AddVersion(file)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "master key version %d added and current; now run: pdctl keys rotate\n", v)
			return err
		},
	}
	keyFileFlag(cmd, &file)
	return cmd
}

func (a *app) keysRemoveVersionCommand() *cobra.Command {
	var file string
	var version uint
	cmd := &cobra.Command{
		Use:   "remove-version --version N [--key-file FILE]",
		Short: "Remove a master key version from the key file, after a finished rotation (no server needed)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := envelope.RemoveVersion(file, uint32(version)); err != nil {
				return err
			}
			_, err := fmt.Fprintf(a.out, "master key version %d removed\n", version)
			return err
		},
	}
	keyFileFlag(cmd, &file)
	cmd.Flags().UintVar(&version, "version", 0, "the version to remove")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

// keysRotateCommand runs a rotation and prints its progress; interrupted,
// it prints the --resume-after to continue with.
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
