package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestRejectedPrincipalIDsAreNotStored sends principal ids that are not ids
// (an identity number, markup, a NUL byte) to the principal RPCs that take
// one in the URL: each is INVALID_ARGUMENT, the attempt is in the audit trail
// under a keyed hash, and none of the values is stored anywhere.
func TestRejectedPrincipalIDsAreNotStored(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		bad := []string{"19121212-1212", "191212121212", "<script>alert(1)", "nul\x00byte"}
		for i, id := range bad {
			callErr(t, op, "personaldata.v1.PrincipalService/RevokePrincipal", &pdv1.RevokePrincipalRequest{
				IdempotencyKey: "revoke-bad-" + string(rune('a'+i)), PrincipalId: id, Reason: "test",
			}, &pdv1.RevokePrincipalResponse{}, codes.InvalidArgument)
			callErr(t, op, "personaldata.v1.PrincipalService/IssueToken", &pdv1.IssueTokenRequest{
				IdempotencyKey: "issue-bad-" + string(rune('a'+i)), PrincipalId: id,
			}, &pdv1.IssueTokenResponse{}, codes.InvalidArgument)
		}
		// An identity number cannot name a new principal either.
		callErr(t, op, "personaldata.v1.PrincipalService/CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "create-pnr",
			Principal:      &pdv1.Principal{PrincipalId: "191212121212", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}},
		}, &pdv1.CreatePrincipalResponse{}, codes.InvalidArgument)

		dump := e.rawDump(t)
		for _, v := range []string{"19121212", "121212-1212", "<script>", "alert(1)", "nul\x00", "byte"} {
			if strings.Contains(dump, v) {
				t.Errorf("a rejected principal id (%d chars) is stored", len(v))
			}
		}
		if n := strings.Count(dump, "principal/rejected-id:"); n < 2*len(bad) {
			t.Errorf("%d audited attempts with a rejected id, want %d", n, 2*len(bad))
		}
	})
}
