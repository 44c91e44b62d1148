package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/durablefile"
)

// call runs fn with the connection and a context bounded by timeout.
func (a *app) call(cmd *cobra.Command, timeout time.Duration, fn func(context.Context, grpc.ClientConnInterface) error) error {
	cc, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	return fn(ctx, cc)
}

// outboxCommand prints what waits for the mailer. By default it prints the
// counts by kind and the age of the oldest (GetOutboxSummary: operators and
// the mailer), nothing of any message. --messages prints the messages and
// --ack also acknowledges each one printed; only the mailer reads them, so
// both need a mailer principal's token.
func (a *app) outboxCommand() *cobra.Command {
	var messages, ack bool
	cmd := &cobra.Command{
		Use:   "outbox [--messages | --ack]",
		Short: "How many messages wait for the mailer, by kind, and how old the oldest is",
		Long: `Print how many messages to rights requesters (and policy notices) wait in the
outbox for the company's mailer, by kind, and how long the oldest has waited:
no address, text, code or id. For operators (and the mailer).

The messages hold the requesters' addresses and live verification codes, so
only a principal of kind mailer reads them: with its token, --messages prints
them as the mailer would send them, and --ack prints and acknowledges each one,
as the mailer does once it has sent it (it is then removed). For development;
the mailer itself streams them.`,
		Example: `  pdctl outbox
  pdctl principal create --id mailer-dev --kind mailer --tenant company -o token > mailer.token
  pdctl --token-file mailer.token outbox --ack`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				client := pdv1.NewRequesterOutboxServiceClient(cc)
				if !messages && !ack {
					return a.printOutboxSummary(ctx, client)
				}
				token := ""
				for {
					res, err := client.ListOutboxMessages(ctx, &pdv1.ListOutboxMessagesRequest{PageToken: token})
					if status.Code(err) == codes.PermissionDenied {
						return fmt.Errorf("%w\nonly a principal of kind mailer reads the messages: use its token (--token-file); 'pdctl outbox' alone prints the counts", err)
					}
					if err != nil {
						return err
					}
					for _, m := range res.GetMessages() {
						fmt.Fprintf(a.out, "id: %s\nkind: %s\nto: %s (%s)\nsubject: %s\n\n%s\n---\n",
							m.GetMessageId(), m.GetKind(), m.GetTo(), m.GetChannel(), m.GetSubject(), m.GetBody())
						if ack {
							if _, err := client.AcknowledgeOutboxMessage(ctx, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}); err != nil {
								return err
							}
						}
					}
					if token = res.GetNextPageToken(); token == "" {
						return nil
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&messages, "messages", false, "print the messages themselves (a mailer's token)")
	cmd.Flags().BoolVar(&ack, "ack", false, "print the messages and acknowledge each one printed: it is removed (a mailer's token)")
	return cmd
}

// printOutboxSummary prints the counts by kind and the oldest's age.
func (a *app) printOutboxSummary(ctx context.Context, client pdv1.RequesterOutboxServiceClient) error {
	res, err := client.GetOutboxSummary(ctx, &pdv1.GetOutboxSummaryRequest{})
	if status.Code(err) == codes.PermissionDenied {
		return fmt.Errorf("%w\nan operator stored before GetOutboxSummary existed is not granted it: 'pdctl principal update --id ID --rpc \"\"' sets the kind's defaults, with it", err)
	}
	if err != nil {
		return err
	}
	if res.GetWaiting() == 0 {
		_, err := fmt.Fprintln(a.out, "waiting: 0")
		return err
	}
	fmt.Fprintf(a.out, "waiting: %d, the oldest queued %s (%s ago)\n\n", res.GetWaiting(),
		res.GetOldestCreateTime().AsTime().Format(time.RFC3339), res.GetOldestAge().AsDuration().Round(time.Second))
	w := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tWAITING\tOLDEST")
	for _, k := range res.GetKinds() {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k.GetKind().String(), "OUTBOX_MESSAGE_KIND_"), "_", "-"))
		fmt.Fprintf(w, "%s\t%d\t%s\n", name, k.GetWaiting(), k.GetOldestAge().AsDuration().Round(time.Second))
	}
	return w.Flush()
}

func (a *app) registerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "register",
		Short: "Print the register of processing activities (GDPR Art. 30) as JSON (operators)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, 5*time.Minute, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewProcessingRegisterServiceClient(cc).GetProcessingRegister(ctx, &pdv1.GetProcessingRegisterRequest{})
				return printJSON(a.out, res, err)
			})
		},
	}
}

// breachesCommand prints the register of breaches (Art. 33(5)) as JSON, or
// one record: for operators and the DPO, whose token file it takes.
func (a *app) breachesCommand() *cobra.Command {
	var openOnly bool
	listCmd := &cobra.Command{
		Use:   "list [--open]",
		Short: "Print the register of breaches (GDPR Art. 33(5)) as JSON, oldest awareness first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewBreachRecordServiceClient(cc).ListBreachRecords(ctx, &pdv1.ListBreachRecordsRequest{OpenOnly: openOnly})
				return printJSON(a.out, res, err)
			})
		},
	}
	listCmd.Flags().BoolVar(&openOnly, "open", false, "only the records not closed")
	getCmd := &cobra.Command{
		Use:   "get BREACH_ID",
		Short: "Show one breach record: deadline and time left, reports to IMY, notices, decisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewBreachRecordServiceClient(cc).GetBreachRecord(ctx, &pdv1.GetBreachRecordRequest{BreachId: args[0]})
				return printJSON(a.out, res, err)
			})
		},
	}
	return group("breaches", "The breach records and their register (operators and the DPO)", listCmd, getCmd)
}

func (a *app) agreementsCommand() *cobra.Command {
	var customer string
	listCmd := &cobra.Command{
		Use:   "list --customer ID",
		Short: "List a customer's processor agreements, with their versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewProcessorAgreementServiceClient(cc).ListProcessorAgreements(ctx, &pdv1.ListProcessorAgreementsRequest{CustomerId: customer})
				return printJSON(a.out, res, err)
			})
		},
	}
	listCmd.Flags().StringVar(&customer, "customer", "", "the customer's id (its controller id)")
	_ = listCmd.MarkFlagRequired("customer")
	getCmd := &cobra.Command{
		Use:     "get AGREEMENT_ID",
		Short:   "Show one processor agreement, its terms in force and every version",
		Example: "  pdctl agreements get customer-42.1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewProcessorAgreementServiceClient(cc).GetProcessorAgreement(ctx, &pdv1.GetProcessorAgreementRequest{AgreementId: args[0]})
				return printJSON(a.out, res, err)
			})
		},
	}
	return group("agreements", "Read processor agreements with customers (GDPR Art. 28)", listCmd, getCmd)
}

// errChainBroken says an audit chain did not verify; the exit status is 1.
var errChainBroken = errors.New("audit chain broken")

func (a *app) auditCommand() *cobra.Command {
	var subject, tenant, chain string
	var principals bool
	var cpc checkpointCheck
	verify := &cobra.Command{
		Use:   "verify (--subject ID | --tenant ID | --principals | --chain CHAIN | --checkpoint FILE [--key VKEY] [--all])",
		Short: "Verify an audit chain, or the whole trail against a checkpoint kept outside (operators)",
		Long: `Walk one hash chain of the audit trail: a subject's, a tenant's (what concerns
no one subject) or the principals'. Prints the events checked; a chain that
does not verify names its first broken event and makes pdctl exit with 1.
Every event is proved against the server's newest signed checkpoint as well.

With --checkpoint, hold the trail to a signed checkpoint kept outside the
server (the files -audit-checkpoint-dir receives): its signature, origin and
key (--key, the log's verifier key you hold; by default the server's), then
a consistency proof from it to the tree now, then every event since it,
recomputed into the tree (with --all every event from the first). Anything
that does not hold is named (leaf, event, checkpoint) and makes pdctl exit
with 1: events rewritten, removed, inserted or moved, or an older copy of
the audit database restored.`,
		Example: `  pdctl audit verify --subject 0f3c9a...
  pdctl audit verify --tenant company
  pdctl audit verify --checkpoint /mnt/worm/checkpoint --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpc.file != "" {
				return a.call(cmd, 30*time.Minute, func(ctx context.Context, cc grpc.ClientConnInterface) error {
					return a.verifyCheckpoint(ctx, cc, cpc)
				})
			}
			if cpc.key != "" || cpc.all {
				return errors.New("--key and --all go with --checkpoint")
			}
			switch {
			case subject != "":
				chain = "subjects/" + subject
			case tenant != "":
				chain = "tenants/" + tenant
			case principals:
				chain = "principals"
			}
			return a.call(cmd, 5*time.Minute, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewAuditServiceClient(cc).VerifyAuditChain(ctx, &pdv1.VerifyAuditChainRequest{Chain: chain})
				if err != nil {
					return err
				}
				if !res.GetIntact() {
					fmt.Fprintf(a.out, "%s: BROKEN at event %d of %d checked: %s", chain, res.GetFirstBrokenSeq(), res.GetEvents(), res.GetReason())
					if res.GetLeafIndex() >= 0 {
						fmt.Fprintf(a.out, " (tree leaf %d)", res.GetLeafIndex())
					}
					if n := res.GetCheckpointSize(); n > 0 {
						fmt.Fprintf(a.out, ", against the checkpoint of %d events", n)
					}
					fmt.Fprintln(a.out)
					return fmt.Errorf("%w: %s", errChainBroken, chain)
				}
				_, err = fmt.Fprintf(a.out, "%s: intact, %d events\n", chain, res.GetEvents())
				return err
			})
		},
	}
	f := verify.Flags()
	f.StringVar(&subject, "subject", "", "the subject's id: its chain")
	f.StringVar(&tenant, "tenant", "", `a controller's id ("company", a customer): its chain`)
	f.BoolVar(&principals, "principals", false, "the chain of changes to principals")
	f.StringVar(&chain, "chain", "", `the chain by name: "subjects/<id>", "tenants/<id>" or "principals"`)
	f.StringVar(&cpc.file, "checkpoint", "", "a signed checkpoint file kept outside the server: verify the whole trail against it")
	f.StringVar(&cpc.key, "key", "", "with --checkpoint: the log's verifier key (<origin>+<hash>+<key>); default the server's")
	f.BoolVar(&cpc.all, "all", false, "with --checkpoint: verify every event, not only those since the checkpoint")
	verify.MarkFlagsOneRequired("subject", "tenant", "principals", "chain", "checkpoint")
	verify.MarkFlagsMutuallyExclusive("subject", "tenant", "principals", "chain", "checkpoint")
	var out string
	take := &cobra.Command{
		Use:   "checkpoint [--out FILE]",
		Short: "Sign a checkpoint of the audit trail now and print it (operators)",
		Long: `Have the server sign a checkpoint of the audit trail's Merkle tree now, store
it and push it where it is configured to (-audit-checkpoint-dir, -url), and
print it: the signed note, which 'pdctl audit verify --checkpoint' and
transparency-dev witnesses read. --out writes it to a file as well (keep it
outside the server).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, time.Minute, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewAuditServiceClient(cc).CreateAuditCheckpoint(ctx, &pdv1.CreateAuditCheckpointRequest{})
				if err != nil {
					return err
				}
				note := res.GetCheckpoint().GetSignedNote()
				if out != "" {
					if err := durablefile.Write(out, []byte(note), true); err != nil {
						return fmt.Errorf("--out: %w", err)
					}
				}
				_, err = fmt.Fprint(a.out, note)
				return err
			})
		},
	}
	take.Flags().StringVar(&out, "out", "", "also write the checkpoint to this file")
	return group("audit", "Check the hash-chained audit trail and its signed checkpoints", verify, take)
}
