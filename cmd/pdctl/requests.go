package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

func (a *app) requestsCommand() *cobra.Command {
	return group("requests", "The queue of data subjects' rights requests (support staff)",
		a.requestsListCommand(),
		a.requestsShowCommand(),
	)
}

func stateNames() []string { return enumNames(pdv1.RightsRequestState_value, "RIGHTS_REQUEST_STATE_") }
func requestKindNames() []string {
	return enumNames(pdv1.RightsRequestKind_value, "RIGHTS_REQUEST_KIND_")
}

// enumWord writes an enum value as on the command line: "verified".
func enumWord(name, prefix string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, prefix), "_", "-"))
}

func (a *app) requestsListCommand() *cobra.Command {
	var controller, forwardedTo, states, kinds, subject string
	var overdue, asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--controller ID] [--forwarded-to ID] [--subject ID] [--state S,...] [--kind K,...] [--overdue] [--json]",
		Short: "List the rights requests by due date: id, kind, state, due date, subject and what is missing",
		Long: `List a queue of rights requests, the earliest due first, as a table without
personal values (id, kind, state, due date, overdue, subject id and what must
happen next); "pdctl requests show ID" shows one in full. --json prints the
replies as they come, with every field.`,
		Example: `  pdctl --token-file support.token requests list --overdue
  pdctl --token-file support.token requests list --state received,verified`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pdv1.ListRightsRequestsRequest{ControllerId: controller, ForwardedTo: forwardedTo, SubjectId: subject, OverdueOnly: overdue, PageSize: 100}
			for _, s := range list(states) {
				v, err := enumValue(pdv1.RightsRequestState_value, "RIGHTS_REQUEST_STATE_", s)
				if err != nil {
					return fmt.Errorf("--state: %w", err)
				}
				req.States = append(req.States, pdv1.RightsRequestState(v))
			}
			for _, k := range list(kinds) {
				v, err := enumValue(pdv1.RightsRequestKind_value, "RIGHTS_REQUEST_KIND_", k)
				if err != nil {
					return fmt.Errorf("--kind: %w", err)
				}
				req.Kinds = append(req.Kinds, pdv1.RightsRequestKind(v))
			}
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				client := pdv1.NewRightsRequestServiceClient(cc)
				tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
				if !asJSON {
					fmt.Fprintln(tw, "REQUEST\tKIND\tSTATE\tDUE\tOVERDUE\tSUBJECT\tNEXT")
				}
				for {
					res, err := client.ListRightsRequests(ctx, req)
					if err != nil {
						return err
					}
					if asJSON {
						if err := printJSON(a.out, res, nil); err != nil {
							return err
						}
					} else {
						for _, r := range res.GetRequests() {
							fmt.Fprintln(tw, requestRow(r))
						}
					}
					if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
						return tw.Flush()
					}
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&controller, "controller", "", `whose queue: "company" or a customer's id; may be left out by a principal acting for one`)
	f.StringVar(&forwardedTo, "forwarded-to", "", "only the requests forwarded to this customer (a forwarded request stays in the company's queue)")
	f.StringVar(&subject, "subject", "", "only the requests matched to this subject id, answered ones too")
	f.StringVar(&states, "state", "", "only these states, comma-separated: "+joinNames(stateNames()))
	f.StringVar(&kinds, "kind", "", "only these kinds, comma-separated: "+joinNames(requestKindNames()))
	f.BoolVar(&overdue, "overdue", false, "only requests past their due date and not answered")
	f.BoolVar(&asJSON, "json", false, "print the replies as JSON, every field")
	_ = cmd.RegisterFlagCompletionFunc("state", completeFrom(stateNames()))
	_ = cmd.RegisterFlagCompletionFunc("kind", completeFrom(requestKindNames()))
	return cmd
}

func (a *app) requestsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show REQUEST_ID",
		Short: "Show one rights request in full: requester, steps, decision, what is missing",
		Long: `Show one rights request with every field. It holds the requester's personal
values (claimed identity, words, reply address): do not paste it into a ticket.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, callTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				res, err := pdv1.NewRightsRequestServiceClient(cc).GetRightsRequest(ctx, &pdv1.GetRightsRequestRequest{RequestId: args[0]})
				return printJSON(a.out, res, err)
			})
		},
	}
}

// requestRow is a request's line in the queue: no personal value.
func requestRow(r *pdv1.RightsRequest) string {
	overdue, subject := "", r.GetSubjectId()
	if r.GetOverdue() {
		overdue = "overdue"
	}
	if subject == "" {
		subject = "-"
	}
	return strings.Join([]string{r.GetRequestId(),
		enumWord(r.GetKind().String(), "RIGHTS_REQUEST_KIND_"), enumWord(r.GetState().String(), "RIGHTS_REQUEST_STATE_"),
		r.GetDueDate(), overdue, subject, strings.Join(r.GetMissing(), "; ")}, "\t")
}
