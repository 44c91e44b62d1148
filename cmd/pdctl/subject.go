package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

func (a *app) subjectCommand() *cobra.Command {
	c := group("subject", "Find a data subject and export everything held about them (support staff)",
		a.subjectFindCommand(),
		a.subjectAccessCommand(),
	)
	c.Long = `Find a data subject and export everything held about them. These commands
read personal data: run them with a support-staff principal's token
(--token-file); operators may not call them.`
	return c
}

func (a *app) subjectFindCommand() *cobra.Command {
	var controller, identityNumber, email string
	cmd := &cobra.Command{
		Use:   "find [--controller ID] [--identity-number N | --email E]",
		Short: "Find a subject by identity number or e-mail, read from standard input",
		Long: `Find a subject by identity number or e-mail and print it.

The value is read from standard input (one line; on a terminal pdctl asks for
it): a value with an @ is an e-mail, anything else an identity number. Prefer
this to --identity-number and --email: a value on the command line stays in the
shell's history and is visible to other users in the process list.`,
		Example: `  pdctl --token-file support.token subject find
  printf '%s\n' "$EMAIL" | pdctl --token-file support.token subject find --controller customer-42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pdv1.FindSubjectRequest{ControllerId: controller}
			switch {
			case identityNumber != "":
				req.Key = &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: identityNumber}
			case email != "":
				req.Key = &pdv1.FindSubjectRequest_Email{Email: email}
			default:
				v, err := a.readValue("Identity number or e-mail: ")
				if err != nil {
					return err
				}
				if strings.Contains(v, "@") {
					req.Key = &pdv1.FindSubjectRequest_Email{Email: v}
				} else {
					req.Key = &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: v}
				}
			}
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewPersonalDataServiceClient(cc).FindSubject(ctx, req)
				return printJSON(a.out, res, err)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&controller, "controller", "", `the controller: "company" or a customer's id; may be left out by a principal acting for one`)
	f.StringVar(&identityNumber, "identity-number", "", "the identity number (stays in shell history: prefer standard input)")
	f.StringVar(&email, "email", "", "the e-mail address (stays in shell history: prefer standard input)")
	cmd.MarkFlagsMutuallyExclusive("identity-number", "email")
	return cmd
}

// readValue reads one line from standard input, asking for it on a
// terminal. The value is never echoed back or logged by pdctl.
func (a *app) readValue(prompt string) (string, error) {
	if f, ok := a.in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(a.errOut, prompt)
		}
	}
	line, err := bufio.NewReader(a.in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	if v := strings.TrimSpace(line); v != "" {
		return v, nil
	}
	return "", errors.New("no identity number or e-mail on standard input")
}

func (a *app) subjectAccessCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "access SUBJECT_ID [-o FILE]",
		Short: "Save everything held about a subject (Art. 15 and 20) to an owner-only file",
		Long: `Export everything held about a subject (GDPR Art. 15 access, Art. 20
portability): one JSON document, the access reply's pages with their lists
appended.

The file is created with mode 0600 and never overwrites one. By default it goes
under your cache directory ($XDG_CACHE_HOME or ~/.cache, pdctl/access/, mode
0700), never into the current directory, so an export of personal data does not
end up in a working tree or a commit; its path is printed. -o FILE saves it
there instead, and -o - writes it to standard output. Delete it once it is sent.`,
		Example: `  pdctl --token-file support.token subject access 0f3c9a...
  pdctl --token-file support.token subject access 0f3c9a... -o /secure/outgoing/ticket-4711.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			var doc *pdv1.AccessSubjectResponse
			err := a.call(cmd, 10*time.Minute, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				var err error
				doc, err = accessDocument(ctx, pdv1.NewPersonalDataServiceClient(cc), id)
				return err
			})
			if err != nil {
				return err
			}
			b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(doc)
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if output == "-" {
				_, err := a.out.Write(b)
				return err
			}
			path := output
			if path == "" {
				dir, err := exportDir()
				if err != nil {
					return err
				}
				path = filepath.Join(dir, fmt.Sprintf("subject-%s-%s.json", id, time.Now().UTC().Format("20060102T150405.000Z")))
			}
			if err := writeOwnerOnly(path, b); err != nil {
				return err
			}
			fmt.Fprintln(a.errOut, "access document saved, readable by you only; send it securely and delete it afterwards:")
			_, err = fmt.Fprintln(a.out, path)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to save to (- for standard output); default: a new file under your cache directory")
	return cmd
}

// accessDocument reads every page of a subject's access reply in one
// stream and appends the lists of the later pages to the first.
func accessDocument(ctx context.Context, client pdv1.PersonalDataServiceClient, id string) (*pdv1.AccessSubjectResponse, error) {
	stream, err := client.StreamSubjectAccess(ctx, &pdv1.StreamSubjectAccessRequest{SubjectId: id})
	if err != nil {
		return nil, err
	}
	var doc *pdv1.AccessSubjectResponse
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := res.GetPage()
		if doc == nil {
			doc = p
			continue
		}
		doc.History = append(doc.History, p.GetHistory()...)
		doc.Changes = append(doc.Changes, p.GetChanges()...)
		doc.Consents = append(doc.Consents, p.GetConsents()...)
		doc.Disclosures = append(doc.Disclosures, p.GetDisclosures()...)
		doc.Holds = append(doc.Holds, p.GetHolds()...)
	}
	if doc == nil {
		return nil, errors.New("the server sent no access page")
	}
	doc.NextPageToken = ""
	return doc, nil
}

// exportDir is where exports go by default: pdctl/access under the user's
// cache directory, owner-only; a new private temporary directory when the
// user has none.
func exportDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return os.MkdirTemp("", "pdctl-access-")
	}
	dir := filepath.Join(base, "pdctl", "access")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// MkdirAll leaves an existing directory's mode as it was.
	return dir, os.Chmod(dir, 0o700)
}

// writeOwnerOnly creates path with mode 0600 and writes b; it never
// replaces a file, and leaves none behind when the write fails.
func writeOwnerOnly(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
