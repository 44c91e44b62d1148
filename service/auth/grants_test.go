package auth

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

var update = flag.Bool("update", false, "rewrite grants.md from the rules")

// grantsFile is the table of grants, committed beside the rules.
const grantsFile = "grants.md"

// kinds are the kinds of principal, in the order of their enum.
func kinds() []pdv1.PrincipalKind {
	var out []pdv1.PrincipalKind
	for n := range pdv1.PrincipalKind_name {
		if k := pdv1.PrincipalKind(n); k != pdv1.PrincipalKind_PRINCIPAL_KIND_UNSPECIFIED {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// kindName is a kind as pdctl and the README spell it: support-staff.
func kindName(k pdv1.PrincipalKind) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k.String(), "PRINCIPAL_KIND_"), "_", "-"))
}

func purposeNames(ps []pdv1.Purpose) string {
	var out []string
	for _, p := range ps {
		out = append(out, strings.TrimPrefix(p.String(), "PURPOSE_"))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// apiMethods is every RPC of the API's services, by service in the order
// of their files and methods in the order declared.
func apiMethods() []protoreflect.MethodDescriptor {
	var files []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(f protoreflect.FileDescriptor) bool {
		files = append(files, f)
		return true
	})
	slices.SortFunc(files, func(a, b protoreflect.FileDescriptor) int { return strings.Compare(a.Path(), b.Path()) })
	var out []protoreflect.MethodDescriptor
	for _, f := range files {
		for i := range f.Services().Len() {
			ms := f.Services().Get(i).Methods()
			for j := range ms.Len() {
				out = append(out, ms.Get(j))
			}
		}
	}
	return out
}

// grantsTable is grants.md as the rules give it.
func grantsTable() []byte {
	var b bytes.Buffer
	b.WriteString("# What each kind of principal may do\n\n")
	b.WriteString("Generated from `service/auth/rules.go` by `go generate ./service/auth`; `TestGrantsTable` fails when\n")
	b.WriteString("the two disagree. Each kind's defaults are also its ceiling: a principal may be granted less (`pdctl\n")
	b.WriteString("principal create|update --rpc/--purpose`), never more (`INVALID_ARGUMENT`), and a grant found in the\n")
	b.WriteString("store beyond its kind's ceiling is ignored. The tenant rules apply on top: a principal sees only the\n")
	b.WriteString("controllers it acts for (operators and the DPO may act for all, `*`).\n\n")

	b.WriteString("## Purposes\n\n| kind | default purposes | may be granted |\n|---|---|---|\n")
	for _, k := range kinds() {
		ceiling := "any"
		if c, bounded := purposeCeilings[k]; bounded {
			ceiling = purposeNames(c)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", kindName(k), purposeNames(DefaultPurposes(k)), ceiling)
	}

	b.WriteString("\n## RPCs\n\n")
	b.WriteString("✓: by default and at most. Every principal may call `PrincipalService.GetCaller` (what it may do)\n")
	b.WriteString("and the server reflection service.\n\n")
	b.WriteString("| RPC |")
	for _, k := range kinds() {
		fmt.Fprintf(&b, " %s |", kindName(k))
	}
	b.WriteString(" limits |\n|---|")
	for range kinds() {
		b.WriteString(":-:|")
	}
	b.WriteString("---|\n")
	for _, m := range apiMethods() {
		full := fmt.Sprintf("/%s/%s", m.Parent().FullName(), m.Name())
		if anyPrincipalRPCs[full] {
			continue
		}
		fmt.Fprintf(&b, "| %s.%s |", m.Parent().Name(), m.Name())
		for _, k := range kinds() {
			cell := ""
			if Grantable(k, full) {
				cell = "✓"
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		fmt.Fprintf(&b, " %s |\n", rpcLimits[full])
	}
	return b.Bytes()
}

// TestGrantsTable checks that the committed table of grants is the one the
// rules give; -update (go generate ./service/auth) rewrites it.
func TestGrantsTable(t *testing.T) {
	want := grantsTable()
	if *update {
		if err := os.WriteFile(grantsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(grantsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s does not match service/auth/rules.go: run go generate ./service/auth and commit it", grantsFile)
	}
}

// TestGrantsCoverTheAPI checks that the rules name only RPCs of the API, so
// that the table shows every grant.
func TestGrantsCoverTheAPI(t *testing.T) {
	api := map[string]bool{}
	for _, m := range apiMethods() {
		api[fmt.Sprintf("/%s/%s", m.Parent().FullName(), m.Name())] = true
	}
	for _, k := range kinds() {
		for _, m := range DefaultRPCs(k) {
			if !api[m] {
				t.Errorf("%s: %s is not an RPC of the API", kindName(k), m)
			}
		}
	}
	for m := range rpcLimits {
		if !api[m] {
			t.Errorf("rpcLimits: %s is not an RPC of the API", m)
		}
	}
}

// TestLeastGrants pins what issue 23 took away, so that it does not come
// back unnoticed: the domain-registration integration cannot ask whether an
// identity number is a customer's, support staff neither disclose nor read
// agreements, and operators do not export a customer's data.
func TestLeastGrants(t *testing.T) {
	for _, tc := range []struct {
		kind   pdv1.PrincipalKind
		method string
	}{
		{pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, pdv1.PersonalDataService_FindSubject_FullMethodName},
		{pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, pdv1.DisclosureService_Disclose_FullMethodName},
		{pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, pdv1.ProcessorAgreementService_GetProcessorAgreement_FullMethodName},
		{pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, pdv1.ProcessorAgreementService_ListProcessorAgreements_FullMethodName},
		{pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, pdv1.ProcessorAgreementService_CheckProcessorAgreement_FullMethodName},
		{pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR, pdv1.ProcessorAgreementService_ExportControllerSubjects_FullMethodName},
	} {
		if Grantable(tc.kind, tc.method) {
			t.Errorf("%s may be granted %s", kindName(tc.kind), tc.method)
		}
	}
}
