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
// again with childEnv set), as the service does in real use: the writer
// is killed with SIGKILL before the cut, which leaves its connections
// open, so that nothing checkpoints or syncs on close. It also keeps the
// page faults on the mmapped -shm file out of the process that serves
// the filesystem.
const (
	childEnv     = "POWERCUT_CHILD" // "sqlite-write", "sqlite-check" or "mmap"
	childDBEnv   = "POWERCUT_CHILD_FILE"
	childSyncEnv = "POWERCUT_SQLITE_SYNCHRONOUS"
	childRowsEnv = "POWERCUT_SQLITE_ROWS"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		var err error
		switch mode {
		case "sqlite-write", "sqlite-check":
			err = sqliteChild(strings.TrimPrefix(mode, "sqlite-"))
		case "mmap":
			err = mmapChild(os.Getenv(childDBEnv))
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

// sqliteChild is the child process: "write" creates a table, checkpoints
// it (so the schema is durable in every mode), commits rows one insert at
// a time without further checkpoints, prints "committed N shm-mapped
// true|false" and waits to be killed; "check" prints the integrity check
// and the number of rows.
func sqliteChild(mode string) error {
	dsn := "file:" + os.Getenv(childDBEnv) +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(" + os.Getenv(childSyncEnv) + ")"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	switch mode {
	case "write":
		rows, err := strconv.Atoi(os.Getenv(childRowsEnv))
		if err != nil {
			return err
		}
		for _, q := range []string{
			"PRAGMA wal_autocheckpoint=0",
			"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
			"PRAGMA wal_checkpoint(TRUNCATE)",
		} {
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		for i := 1; i <= rows; i++ {
			if _, err := db.Exec("INSERT INTO t (id, v) VALUES (?, ?)", i, strings.Repeat("v", 100+i)); err != nil {
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
		var n, maxID int
		if err := db.QueryRow("SELECT count(*), coalesce(max(id), 0) FROM t").Scan(&n, &maxID); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		fmt.Printf("integrity %s rows %d max %d\n", integrity, n, maxID)
		return db.Close()
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func childCmd(t *testing.T, mode, db, synchronous string, rows int) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		childEnv+"="+mode,
		childDBEnv+"="+db,
		childSyncEnv+"="+synchronous,
		childRowsEnv+"="+strconv.Itoa(rows),
	)
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
		t.Fatal("no answer from the SQLite child process")
		return ""
	}
}

// TestSQLite runs SQLite in WAL mode on the filesystem, kills it after N
// committed inserts and cuts the power: with synchronous=FULL every
// commit survives, with NORMAL (no checkpoint since the inserts) they are
// lost, and in both cases the database opens and is intact.
func TestSQLite(t *testing.T) {
	const rows = 200
	tests := []struct {
		synchronous string
		wantAll     bool // every committed row survives
	}{
		{synchronous: "FULL", wantAll: true},
		{synchronous: "NORMAL", wantAll: false},
	}
	for _, tc := range tests {
		t.Run(tc.synchronous, func(t *testing.T) {
			f := mountTest(t)
			db := filepath.Join(f.Dir(), "test.sqlite")

			w := childCmd(t, "sqlite-write", db, tc.synchronous, rows)
			out, err := w.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Process.Kill(); _ = w.Wait() })
			got := readLine(t, out)
			if want := fmt.Sprintf("committed %d shm-mapped true", rows); got != want {
				t.Fatalf("writer said %q, want %q", got, want)
			}
			t.Logf("%d commits in %v; %+v", rows, time.Since(start).Round(time.Millisecond), f.Stats())
			if err := w.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = w.Wait()

			rep := cut(t, f)
			for _, r := range rep.Reverted {
				t.Logf("reverted %+v", r)
			}

			c := childCmd(t, "sqlite-check", db, tc.synchronous, rows)
			res, err := c.Output()
			if err != nil {
				t.Fatalf("check after the cut: %v", err)
			}
			var integrity string
			var n, maxID int
			if _, err := fmt.Sscanf(string(res), "integrity %s rows %d max %d", &integrity, &n, &maxID); err != nil {
				t.Fatalf("check said %q: %v", res, err)
			}
			t.Logf("after the cut: integrity %s, %d of %d committed rows", integrity, n, rows)
			if integrity != "ok" {
				t.Errorf("integrity_check: %s", integrity)
			}
			if n != maxID {
				t.Errorf("%d rows but the highest id is %d: not a prefix of the commits", n, maxID)
			}
			if tc.wantAll && n != rows {
				t.Errorf("%d rows survived, want all %d", n, rows)
			}
			if !tc.wantAll && n == rows {
				t.Errorf("all %d rows survived with synchronous=%s; want the unsynced commits lost", n, tc.synchronous)
			}
		})
	}
}
