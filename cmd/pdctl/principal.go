package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// callTimeout bounds a command of single calls.
const callTimeout = 30 * time.Second

// principals runs fn with the PrincipalService and a bounded context.
func (a *app) principals(cmd *cobra.Command, fn func(context.Context, pdv1.PrincipalServiceClient) error) error {
	cc, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
	defer cancel()
	return fn(ctx, pdv1.NewPrincipalServiceClient(cc))
}

func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the principal the token belongs to, with its grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				res, err := c.GetCaller(ctx, &pdv1.GetCallerRequest{})
				return printJSON(a.out, res, err)
			})
		},
	}
}

// grantFlags are the grants a principal is given, as flags.
type grantFlags struct{ tenants, purposes, rpcs string }

func (g *grantFlags) add(cmd *cobra.Command, defaults string) {
	f := cmd.Flags()
	f.StringVar(&g.tenants, "tenant", "", `controllers it acts for, comma-separated ("company", customer ids; "*" for operators)`)
	f.StringVar(&g.purposes, "purpose", "", "purposes, comma-separated ("+joinNames(purposeNames())+"); "+defaults)
	f.StringVar(&g.rpcs, "rpc", "", "full RPC method names, comma-separated; "+defaults)
	_ = cmd.RegisterFlagCompletionFunc("purpose", completeFrom(purposeNames()))
}

func (a *app) principalCommand() *cobra.Command {
	return group("principal", "Create, read, change and revoke principals (operators)",
		a.principalCreateCommand(),
		a.principalGetCommand(),
		a.principalListCommand(),
		a.principalUpdateCommand(),
		a.principalIssueTokenCommand(),
		a.principalRevokeCommand(),
	)
}

func (a *app) principalCreateCommand() *cobra.Command {
	var id, kind, desc string
	var g grantFlags
	var o output
	cmd := &cobra.Command{
		Use:   "create --id ID --kind KIND --tenant T[,T...] [--purpose P,...] [--rpc METHOD,...] [-o text|json|token]",
		Short: "Create a principal and print its token, once",
		Long: `Create a principal. Its bearer token is printed once and is not kept anywhere
else: store it as a secret. -o token prints the token alone, for scripts;
-o json prints the principal and the token as one JSON object; the default,
-o text, a summary for people with the token on the last line.`,
		Example: `  pdctl principal create --id support-1 --kind support-staff --tenant company --purpose support,invoicing
  pdctl principal create --id billing --kind billing-system --tenant company -o token > billing.token
  TOKEN=$(pdctl principal create --id support-1 --kind support-staff --tenant company -o token)
  pdctl principal create --id support-1 --kind support-staff --tenant company -o json | jq -r .token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			k, err := enumValue(pdv1.PrincipalKind_value, "PRINCIPAL_KIND_", kind)
			if err != nil {
				return fmt.Errorf("--kind: %w", err)
			}
			ps, err := purposeList(g.purposes)
			if err != nil {
				return err
			}
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				res, err := c.CreatePrincipal(ctx, &pdv1.CreatePrincipalRequest{IdempotencyKey: idempotencyKey(), Principal: &pdv1.Principal{
					PrincipalId: id, Kind: pdv1.PrincipalKind(k), TenantIds: list(g.tenants), Purposes: ps, Rpcs: list(g.rpcs), Description: desc,
				}})
				return o.print(a.out, res, err)
			})
		},
	}
	o.add(cmd)
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "principal id")
	f.StringVar(&kind, "kind", "", "kind: "+joinNames(kindNames()))
	f.StringVar(&desc, "description", "", "what it is")
	g.add(cmd, "the default of its kind when empty")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("kind")
	_ = cmd.RegisterFlagCompletionFunc("kind", completeFrom(kindNames()))
	return cmd
}

func (a *app) principalGetCommand() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "get --id ID",
		Short: "Show a principal and its grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				res, err := c.GetPrincipal(ctx, &pdv1.GetPrincipalRequest{PrincipalId: id})
				return printJSON(a.out, res, err)
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "principal id")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func (a *app) principalListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every principal, page by page",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				token := ""
				for {
					res, err := c.ListPrincipals(ctx, &pdv1.ListPrincipalsRequest{PageToken: token})
					if err := printJSON(a.out, res, err); err != nil {
						return err
					}
					if token = res.GetNextPageToken(); token == "" {
						return nil
					}
				}
			})
		},
	}
}

func (a *app) principalUpdateCommand() *cobra.Command {
	var id string
	var g grantFlags
	cmd := &cobra.Command{
		Use:   "update --id ID [--tenant T,...] [--purpose P,...] [--rpc METHOD,...]",
		Short: "Change a principal's grants: only those given",
		Long: `Change the grants given as flags and keep the others. --purpose "" or --rpc ""
sets that grant back to the default of the principal's kind.`,
		Example: `  pdctl principal update --id support-1 --tenant company,customer-7`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Only the grants given as flags change: the mask names them.
			mask := &fieldmaskpb.FieldMask{}
			for _, g := range [][2]string{{"tenant", "tenant_ids"}, {"purpose", "purposes"}, {"rpc", "rpcs"}} {
				if cmd.Flags().Changed(g[0]) {
					mask.Paths = append(mask.Paths, g[1])
				}
			}
			if len(mask.Paths) == 0 {
				return errors.New("give the grants to change: --tenant, --purpose and/or --rpc")
			}
			ps, err := purposeList(g.purposes)
			if err != nil {
				return err
			}
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				cur, err := c.GetPrincipal(ctx, &pdv1.GetPrincipalRequest{PrincipalId: id})
				if err != nil {
					return err
				}
				res, err := c.UpdatePrincipal(ctx, &pdv1.UpdatePrincipalRequest{
					IdempotencyKey: idempotencyKey(), PrincipalId: id, ExpectedVersion: cur.GetPrincipal().GetVersion(),
					TenantIds: list(g.tenants), Purposes: ps, Rpcs: list(g.rpcs), UpdateMask: mask,
				})
				return printJSON(a.out, res, err)
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "principal id")
	g.add(cmd, `"" sets the default of its kind`)
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func (a *app) principalIssueTokenCommand() *cobra.Command {
	var id string
	var o output
	cmd := &cobra.Command{
		Use:   "issue-token --id ID [-o text|json|token]",
		Short: "Issue a new token for a principal and print it, once",
		Long: `Issue a new bearer token for a principal (its earlier tokens stay valid until
the principal is revoked) and print it once, as principal create does:
-o token prints the token alone, -o json the principal and the token as one
JSON object, the default -o text a summary with the token on the last line.`,
		Example: `  pdctl principal issue-token --id support-1 -o token > support-1.token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				res, err := c.IssueToken(ctx, &pdv1.IssueTokenRequest{IdempotencyKey: idempotencyKey(), PrincipalId: id})
				return o.print(a.out, res, err)
			})
		},
	}
	o.add(cmd)
	cmd.Flags().StringVar(&id, "id", "", "principal id")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func (a *app) principalRevokeCommand() *cobra.Command {
	var id, reason string
	cmd := &cobra.Command{
		Use:   "revoke --id ID [--reason TEXT]",
		Short: "Revoke a principal: its next call, on any replica, is refused",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.principals(cmd, func(ctx context.Context, c pdv1.PrincipalServiceClient) error {
				res, err := c.RevokePrincipal(ctx, &pdv1.RevokePrincipalRequest{IdempotencyKey: idempotencyKey(), PrincipalId: id, Reason: reason})
				return printJSON(a.out, res, err)
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "principal id")
	cmd.Flags().StringVar(&reason, "reason", "", "why it is revoked")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

// output is the -o flag of the commands that print a new token.
type output struct{ format string }

// outputFormats are its values; the first is the default.
var outputFormats = []string{"text", "json", "token"}

func (o *output) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", outputFormats[0], "what to print: text (a summary, the token on the last line), json (the principal and the token as one object) or token (the token alone, for scripts)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}

// check refuses an unknown format before anything is created, so no token
// is issued and lost to a typo.
func (o *output) check() error {
	if !slices.Contains(outputFormats, o.format) {
		return fmt.Errorf("-o/--output: unknown format %q: text, json or token", o.format)
	}
	return nil
}

// tokenResponse is a reply with a new token: CreatePrincipalResponse or
// IssueTokenResponse.
type tokenResponse interface {
	proto.Message
	GetPrincipal() *pdv1.Principal
	GetToken() string
}

func (o *output) print(out io.Writer, res tokenResponse, err error) error {
	if err != nil {
		return err
	}
	if res.GetToken() == "" {
		// Only a replay of the same request, which pdctl never sends.
		return errors.New("the server sent no token: it shows a token once, and this was a repeated request")
	}
	switch o.format {
	case "json":
		return printJSON(out, res, nil)
	case "token":
		_, err := fmt.Fprintln(out, res.GetToken())
		return err
	}
	p := res.GetPrincipal()
	var purposes []string
	for _, v := range p.GetPurposes() {
		purposes = append(purposes, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v.String(), "PURPOSE_"), "_", "-")))
	}
	kind := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(p.GetKind().String(), "PRINCIPAL_KIND_"), "_", "-"))
	_, err = fmt.Fprintf(out, "principal %s (%s), version %d\n  tenants:  %s\n  purposes: %s\n  rpcs:     %d methods (pdctl principal get --id %s lists them)\ntoken (shown once; store it as a secret):\n%s\n",
		p.GetPrincipalId(), kind, p.GetVersion(), strings.Join(p.GetTenantIds(), ", "), strings.Join(purposes, ", "), len(p.GetRpcs()), p.GetPrincipalId(), res.GetToken())
	return err
}

func kindNames() []string    { return enumNames(pdv1.PrincipalKind_value, "PRINCIPAL_KIND_") }
func purposeNames() []string { return enumNames(pdv1.Purpose_value, "PURPOSE_") }

func joinNames(names []string) string { return strings.Join(names, ", ") }

func purposeList(s string) ([]pdv1.Purpose, error) {
	var out []pdv1.Purpose
	for _, p := range list(s) {
		v, err := enumValue(pdv1.Purpose_value, "PURPOSE_", p)
		if err != nil {
			return nil, fmt.Errorf("--purpose: %w", err)
		}
		out = append(out, pdv1.Purpose(v))
	}
	return out, nil
}
