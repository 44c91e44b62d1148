package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
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

// outboxCommand prints the messages waiting for the mailer, for
// development: with --ack it acknowledges each one printed, as the mailer
// does once it has sent it (it is then removed).
func (a *app) outboxCommand() *cobra.Command {
	var ack bool
	cmd := &cobra.Command{
		Use:   "outbox [--ack]",
		Short: "Print the messages waiting for the mailer (rights requesters, policy notices)",
		Long: `Print the messages to rights requesters that wait in the outbox, as the
company's mailer would read them. With --ack each one printed is acknowledged,
as the mailer does once it has sent it, and is removed. For development and
for operators checking what waits; the mailer itself streams them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				client := pdv1.NewRequesterOutboxServiceClient(cc)
				token := ""
				for {
					res, err := client.ListOutboxMessages(ctx, &pdv1.ListOutboxMessagesRequest{PageToken: token})
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
	cmd.Flags().BoolVar(&ack, "ack", false, "acknowledge each message printed (it is removed)")
	return cmd
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
	verify := &cobra.Command{
		Use:   "verify (--subject ID | --tenant ID | --principals | --chain CHAIN)",
		Short: "Verify an audit chain and name its first broken link (operators)",
		Long: `Walk one hash chain of the audit trail: a subject's, a tenant's (what concerns
no one subject) or the principals'. Prints the events checked; a chain that
does not verify names its first broken event and makes pdctl exit with 1.`,
		Example: `  pdctl audit verify --subject 0f3c9a...
  pdctl audit verify --tenant company`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
					fmt.Fprintf(a.out, "%s: BROKEN at event %d of %d checked: %s\n", chain, res.GetFirstBrokenSeq(), res.GetEvents(), res.GetReason())
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
	verify.MarkFlagsOneRequired("subject", "tenant", "principals", "chain")
	verify.MarkFlagsMutuallyExclusive("subject", "tenant", "principals", "chain")
	return group("audit", "Check the hash-chained audit trail", verify)
}
