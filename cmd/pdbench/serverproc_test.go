package main

import "testing"

func TestParseHandshake(t *testing.T) {
	line := `{"grpc_addr":"127.0.0.1:4000","http_addr":"127.0.0.1:4001","store_uri":"mongodb://x/","operator_token":"t","data_dir":"/tmp/d"}` + "\n"
	got, err := parseHandshake(line)
	want := serverInfo{GRPCAddr: "127.0.0.1:4000", HTTPAddr: "127.0.0.1:4001", StoreURI: "mongodb://x/", OperatorToken: "t", DataDir: "/tmp/d"}
	if err != nil || got != want {
		t.Fatalf("parseHandshake = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{
		"",
		"time=2026-01-01 level=WARN msg=starting\n",
		`{"grpc_addr":"127.0.0.1:4000","http_addr":"127.0.0.1:4001","store_uri":"mongodb://x/","operator_token":"t"}`,
		`{"grpc_addr":"127.0.0.1:4000","store_uri":"mongodb://x/","operator_token":"t","data_dir":"/tmp/d"}`,
		`{"grpc_addr":"127.0.0.1:4000","http_addr":"127.0.0.1:4001","store_uri":"mongodb://x/","operator_token":"t","data_dir":"/tmp/d","extra":1}`,
	} {
		if _, err := parseHandshake(bad); err == nil {
			t.Errorf("parseHandshake(%q) succeeded", bad)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, c := range []struct{ line, cmd, arg string }{
		{"profile-start /tmp/a b.prof\n", cmdProfileStart, "/tmp/a b.prof"},
		{"profile-stop", cmdProfileStop, ""},
		{"  profile-stop  ", cmdProfileStop, ""},
	} {
		cmd, arg, err := parseCommand(c.line)
		if err != nil || cmd != c.cmd || arg != c.arg {
			t.Errorf("parseCommand(%q) = %q, %q, %v; want %q, %q", c.line, cmd, arg, err, c.cmd, c.arg)
		}
	}
	for _, bad := range []string{"", "profile-start", "profile-start  ", "profile-stop now", "profile", "quit"} {
		if _, _, err := parseCommand(bad); err == nil {
			t.Errorf("parseCommand(%q) succeeded", bad)
		}
	}
}
