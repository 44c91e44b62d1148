package main

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// buildFlags are the go build flags of the Dockerfile's build stage, which
// the test's build of the binary must share.
const buildFlags = `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X ` + versionVar + `=${VERSION}"`

// versionVar is the variable the version is stamped into.
const versionVar = "github.com/example/personaldata/cmd/personaldatad/server.version"

// TestImage builds the image from the top-level Dockerfile with podman, from
// scratch only (its prebuilt stage, the binary built here as the build stage
// builds it: no base image can be pulled), checks what is in it, then runs
// it with a read-only root filesystem and the data in a volume, calls it,
// and stops it. It needs podman and root, so it runs only when asked
// (PERSONALDATA_TEST_IMAGE=1; .ci/run installs podman and sets it).
func TestImage(t *testing.T) {
	if os.Getenv("PERSONALDATA_TEST_IMAGE") == "" {
		t.Skip("builds and runs the container image with podman as root: set PERSONALDATA_TEST_IMAGE=1")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("PERSONALDATA_TEST_IMAGE is set, podman is not installed (apt-get install podman runc)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("PERSONALDATA_TEST_IMAGE is set, but the test runs podman as root (it owns the volume's folder to the image's user)")
	}
	dockerfile, err := filepath.Abs("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dockerfile); err != nil || !strings.Contains(string(b), buildFlags) {
		t.Fatalf("the Dockerfile's build stage no longer runs %s (%v): change the test with it", buildFlags, err)
	}

	// The build context: rootfs/ laid out as the build stage's /rootfs.
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "context")
	root := filepath.Join(ctxDir, "rootfs", "root")
	for _, d := range []string{filepath.Join(root, "etc", "ssl", "certs"), filepath.Join(root, "tmp"), filepath.Join(ctxDir, "rootfs", "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the image carries the host's CA bundle: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "ssl", "certs", "ca-certificates.crt"), certs, 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -X "+versionVar+"=image-test", "-o", filepath.Join(root, "personaldatad"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	run := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(podman, args...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stamp := time.Now().UnixNano()
	image := fmt.Sprintf("localhost/personaldatad:test-%d", stamp)
	// The label marks this build's stage and layer images, for the cleanup.
	label := fmt.Sprintf("personaldata.image-test=%d", stamp)
	start := time.Now()
	must("build", "--quiet", "--build-arg", "ROOTFS=prebuilt", "--build-arg", "VERSION=image-test", "--build-arg", "REVISION=0123abc",
		"--label", label, "--file", dockerfile, "--tag", image, ctxDir)
	t.Logf("image built in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		_, _ = run("rmi", "--force", image)
		_, _ = run("image", "prune", "--all", "--force", "--filter", "label="+label)
	})

	// Its configuration: a numeric user that is not root, the binary as
	// entrypoint, the data a volume.
	var cfg struct {
		User         string
		Entrypoint   []string
		Cmd          []string
		Env          []string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		WorkingDir   string
		Labels       map[string]string
	}
	if err := json.Unmarshal([]byte(must("image", "inspect", "--format", "{{json .Config}}", image)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != "65532:65532" || !slices.Equal(cfg.Entrypoint, []string{"/personaldatad"}) || len(cfg.Cmd) != 0 ||
		cfg.WorkingDir != "/data" || len(cfg.Volumes) != 1 || cfg.Volumes["/data"] != struct{}{} ||
		len(cfg.ExposedPorts) != 2 || !slices.Contains(cfg.Env, "PERSONALDATA_DATA_DIR=/data") {
		t.Errorf("image config: %+v", cfg)
	}
	// The OCI annotations, the version and revision from the build args.
	for k, want := range map[string]string{
		"org.opencontainers.image.title":    "personaldatad",
		"org.opencontainers.image.source":   "https://github.com/example/personaldata",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.version":  "image-test",
		"org.opencontainers.image.revision": "0123abc",
	} {
		if cfg.Labels[k] != want {
			t.Errorf("label %s: %q, want %q", k, cfg.Labels[k], want)
		}
	}
	if !strings.Contains(cfg.Labels["org.opencontainers.image.description"], "Personal data") {
		t.Errorf("no description label: %v", cfg.Labels)
	}
	t.Logf("image size %s bytes", must("image", "inspect", "--format", "{{.Size}}", image))

	// Its files: the binary, the CA bundle, /tmp and /data, nothing else (no
	// shell); the binary static, built without cgo and local paths.
	mnt := must("image", "mount", image)
	t.Cleanup(func() { _, _ = run("image", "unmount", image) })
	files := map[string]string{}
	err = filepath.WalkDir(mnt, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == mnt {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		files[strings.TrimPrefix(path, mnt)] = fmt.Sprintf("%v %d:%d", info.Mode(), st.Uid, st.Gid)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/personaldatad": "-rwxr-xr-x 0:0", "/etc": "drwxr-xr-x 0:0", "/etc/ssl": "drwxr-xr-x 0:0", "/etc/ssl/certs": "drwxr-xr-x 0:0",
		"/etc/ssl/certs/ca-certificates.crt": "-rw-r--r-- 0:0", "/tmp": "dtrwxrwxrwx 0:0", "/data": "drwxr-xr-x 65532:65532",
	}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Errorf("files in the image:\n%v\nwant\n%v", files, want)
	}
	bin := filepath.Join(mnt, "personaldatad")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary names a dynamic loader")
		}
	}
	stripped := f.Section(".symtab") == nil
	f.Close()
	if !stripped {
		t.Errorf("the binary keeps its symbol table (-s)")
	}
	if len(libs) != 0 {
		t.Errorf("the binary needs shared libraries: %v", libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// Go records no -ldflags with -trimpath (they may hold paths).
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings: %v", settings)
	}

	// Runs: with runc and explicit limits, because this sandbox lacks
	// CAP_SYS_RESOURCE (podman's default limits cannot be set) and mixes
	// cgroup v1 and v2, which crun refuses.
	var podmanRun []string
	if _, err := exec.LookPath("runc"); err == nil {
		podmanRun = []string{"--runtime", "runc"}
	}
	podmanRun = append(podmanRun, "run", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", "--read-only")

	// The version stamped at link time, as -version prints it.
	if out := must(slices.Concat(podmanRun, []string{"--rm", "--network", "none", image, "-version"})...); !strings.HasPrefix(out, "personaldatad image-test go") {
		t.Errorf("-version printed %q", out)
	}

	// Serving: root filesystem read-only, /tmp a tmpfs, the data in a
	// folder owned by the image's user.
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	name := strings.ReplaceAll(strings.TrimPrefix(image, "localhost/"), ":", "-")
	must(slices.Concat(podmanRun, []string{"--detach", "--name", name, "--tmpfs", "/tmp:rw,mode=1777",
		"--volume", data + ":/data", "--publish", httpAddr + ":8080", "--publish", grpcAddr + ":50051", image})...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("logs", name)
			t.Logf("container log:\n%s", out)
		}
		_, _ = run("rm", "--force", name)
	})
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within a minute: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res, err := http.Get("http://" + httpAddr + "/livez"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("livez: %v %v", res, err)
	}

	// The first operator's token, written by the image's user into the
	// volume; with it, a support principal, and as that one a subject
	// created and found: the embedded store writes in /data.
	token, err := os.ReadFile(filepath.Join(data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"operator.token", "keyring.json", "personaldata.sqlite"} {
		st, err := os.Stat(filepath.Join(data, file))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != 65532 {
			t.Errorf("%s in the volume: %v, want owned by 65532", file, err)
		}
	}
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(token string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(token))
	}
	op := as(string(token))
	if me, err := pdv1.NewPrincipalServiceClient(cc).GetCaller(op, &pdv1.GetCallerRequest{}); err != nil ||
		me.GetPrincipal().GetKind() != pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR {
		t.Fatalf("GetCaller as the operator: %v %v", me, err)
	}
	support, err := pdv1.NewPrincipalServiceClient(cc).CreatePrincipal(op, &pdv1.CreatePrincipalRequest{IdempotencyKey: "image-1", Principal: &pdv1.Principal{
		PrincipalId: "support-1", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, TenantIds: []string{"company"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	pd := pdv1.NewPersonalDataServiceClient(cc)
	created, err := pd.CreateSubject(as(support.GetToken()), &pdv1.CreateSubjectRequest{
		IdempotencyKey: "image-tolvan", ControllerId: "company", Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "signup-1",
		Person: &pdv1.Person{IdentityNumber: "19121212-1212", GivenName: "Tolvan", FamilyName: "Tolvansson", Email: "tolvan@example.test"},
	})
	if err != nil {
		t.Fatalf("create a subject: %v", err)
	}
	found, err := pd.FindSubject(as(support.GetToken()), &pdv1.FindSubjectRequest{Key: &pdv1.FindSubjectRequest_Email{Email: "tolvan@example.test"}})
	if err != nil || found.GetSubject().GetSubjectId() != created.GetSubject().GetSubjectId() {
		t.Errorf("find: %v %v", found, err)
	}

	// SIGTERM: a graceful stop, exit status 0.
	must("stop", "--time", "30", name)
	if code := must("inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("exit status %s after SIGTERM", code)
	}
	if logs := must("logs", name); !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no graceful stop in the log:\n%s", logs)
	}
}
