package powercut

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// The SQLite tests run SQLite in child processes (this test binary run
// again with childEnv set), as the service does in real use: the writers
// are killed with SIGKILL before the cut, which leaves their connections
// open, so that nothing checkpoints or syncs on close. It also keeps the
// page faults on the mmapped -shm file out of the process that serves
// the filesystem.
const (
	childEnv      = "POWERCUT_CHILD" // "sqlite-setup", "sqlite-write", "sqlite-check" or "mmap"
	childFileEnv  = "POWERCUT_CHILD_FILE"
	childSyncEnv  = "POWERCUT_SQLITE_SYNCHRONOUS"
	childFirstEnv = "POWERCUT_SQLITE_FIRST" // first id a writer inserts
	childRowsEnv  = "POWERCUT_SQLITE_ROWS"  // rows a writer inserts
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		var err error
		switch mode {
		case "sqlite-setup", "sqlite-write", "sqlite-check":
			err = sqliteChild(strings.TrimPrefix(mode, "sqlite-"))
		case "mmap":
			err = mmapChild(os.Getenv(childFileEnv))
		default:
			err = fmt.Errorf("unknown mode %q", mode)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s child: %v\n", mode, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sqliteChild is a child process using the database: "setup" creates the
// table and closes the database, which checkpoints and syncs it, so the
// schema is durable in every mode; "write" turns automatic checkpoints
// off, commits rows one insert at a time, prints "committed N shm-mapped
// true|false" and waits to be killed; "check" prints the integrity check
// and the number of rows.
func sqliteChild(mode string) error {
	dsn := "file:" + os.Getenv(childFileEnv) +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(20000)&_pragma=synchronous(" + os.Getenv(childSyncEnv) + ")"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	switch mode {
	case "setup":
		if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"); err != nil {
			return err
		}
		return db.Close()
	case "write":
		first, err := strconv.Atoi(os.Getenv(childFirstEnv))
		if err != nil {
			return err
		}
		rows, err := strconv.Atoi(os.Getenv(childRowsEnv))
		if err != nil {
			return err
		}
		if _, err := db.Exec("PRAGMA wal_autocheckpoint=0"); err != nil {
			return err
		}
		for i := first; i < first+rows; i++ {
			if _, err := db.Exec("INSERT INTO t (id, v) VALUES (?, ?)", i, strings.Repeat("v", 100+i%1000)); err != nil {
				return fmt.Errorf("insert %d: %w", i, err)
			}
		}
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return err
		}
		fmt.Printf("committed %d shm-mapped %t\n", rows, strings.Contains(string(maps), "-shm"))
		time.Sleep(time.Hour) // until killed
		return nil
	case "check":
		var integrity string
		if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil {
			return fmt.Errorf("integrity_check: %w", err)
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		fmt.Printf("integrity %s rows %d\n", integrity, n)
		return db.Close()
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// childCmd runs this test binary as a child process in mode on file, with
// more environment variables in env.
func childCmd(t *testing.T, mode, file string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childFileEnv+"="+file)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// readLine reads the child's first line of output, or fails after a while.
func readLine(t *testing.T, r io.Reader) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		return strings.TrimSpace(s)
	case <-time.After(60 * time.Second):
		t.Fatal("no answer from the child process")
		return ""
	}
}

// TestSQLite runs SQLite in WAL mode on the filesystem in one or more
// writer processes, kills them after their inserts are committed and cuts
// the power: with synchronous=FULL every commit survives, with NORMAL (no
// checkpoint since the inserts) they are lost, and in every case the
// database opens and is intact. Several writer processes share the
// mmapped -shm file.
func TestSQLite(t *testing.T) {
	const rows = 200
	tests := []struct {
		synchronous string
		writers     int
		wantAll     bool // every committed row survives
	}{
		{synchronous: "FULL", writers: 1, wantAll: true},
		{synchronous: "NORMAL", writers: 1, wantAll: false},
		{synchronous: "FULL", writers: 3, wantAll: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d-writers", tc.synchronous, tc.writers), func(t *testing.T) {
			f := mountTest(t)
			db := filepath.Join(f.Dir(), "test.sqlite")
			sync := childSyncEnv + "=" + tc.synchronous
			if out, err := childCmd(t, "sqlite-setup", db, sync).Output(); err != nil {
				t.Fatalf("setup: %v %s", err, out)
			}

			start := time.Now()
			writers := make([]*exec.Cmd, tc.writers)
			outs := make([]io.Reader, tc.writers)
			for i := range writers {
				w := childCmd(t, "sqlite-write", db, sync,
					childFirstEnv+"="+strconv.Itoa(1+i*rows), childRowsEnv+"="+strconv.Itoa(rows))
				out, err := w.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = w.Process.Kill(); _ = w.Wait() })
				writers[i], outs[i] = w, out
			}
			for i, out := range outs {
				if got, want := readLine(t, out), fmt.Sprintf("committed %d shm-mapped true", rows); got != want {
					t.Fatalf("writer %d said %q, want %q", i, got, want)
				}
			}
			t.Logf("%d commits in %v; %+v", tc.writers*rows, time.Since(start).Round(time.Millisecond), f.Stats())
			for _, w := range writers {
				if err := w.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				_ = w.Wait()
			}

			rep := cut(t, f)
			for _, r := range rep.Reverted {
				t.Logf("reverted %+v", r)
			}

			res, err := childCmd(t, "sqlite-check", db, sync).Output()
			if err != nil {
				t.Fatalf("check after the cut: %v", err)
			}
			var integrity string
			var n int
			if _, err := fmt.Sscanf(string(res), "integrity %s rows %d", &integrity, &n); err != nil {
				t.Fatalf("check said %q: %v", res, err)
			}
			total := tc.writers * rows
			t.Logf("after the cut: integrity %s, %d of %d committed rows", integrity, n, total)
			if integrity != "ok" {
				t.Errorf("integrity_check: %s", integrity)
			}
			if tc.wantAll && n != total {
				t.Errorf("%d rows survived, want all %d", n, total)
			}
			if !tc.wantAll && n == total {
				t.Errorf("all %d rows survived with synchronous=%s; want the unsynced commits lost", n, tc.synchronous)
			}
		})
	}
}
