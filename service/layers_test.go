package service

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// layers are service's packages from the top down, as the package comment
// and the README's layout list them: each may import only those after it.
var layers = []string{
	"",
	"requests",
	"accountability",
	"agreements",
	"retention",
	"disclosure",
	"backup",
	"principals",
	"keys",
	"signin",
	"subjects",
	"core",
	"jobs",
	"vault",
	"validate",
	"fault",
	"rules",
	"audit",
	"audit/checkpoint",
	"auth",
	"personnummer",
	"contact",
}

const module = "github.com/example/personaldata/service"

// TestImportsGoOneWay holds the packages to the order documented: an
// import of a package above, or beside, fails, as does a package the list
// does not place.
func TestImportsGoOneWay(t *testing.T) {
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(path))
		if pkg == "." {
			pkg = ""
		}
		seen[pkg] = true
		at := slices.Index(layers, pkg)
		if at < 0 {
			t.Errorf("package service/%s is not placed in layers (and in the package comment and README)", pkg)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p != module && !strings.HasPrefix(p, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
			if i := slices.Index(layers, dep); i <= at {
				t.Errorf("%s imports service/%s, which is not below service/%s", path, dep, pkg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if !seen[l] {
			t.Errorf("layers names service/%s, which has no code", l)
		}
	}
}
