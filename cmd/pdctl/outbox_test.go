package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestOutboxForAnOperatorStoredBefore: the first operator as an earlier
// version stored it, with the outbox's RPCs and without GetOutboxSummary,
// reads no message; pdctl says how it gets the summary, and after
// 'principal update --rpc ""' (its kind's defaults) it gets it.
func TestOutboxForAnOperatorStoredBefore(t *testing.T) {
	pdctl, tokenFile := startServer(t, t.TempDir())
	client, err := mongo.Connect(options.Client().ApplyURI(storeURI))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	principals := client.Database("personaldata").Collection("principals")
	var p struct {
		RPCs []string `bson:"rpcs"`
	}
	if err := principals.FindOne(context.Background(), bson.D{{Key: "_id", Value: "operator"}}).Decode(&p); err != nil {
		t.Fatal(err)
	}
	old := slices.DeleteFunc(p.RPCs, func(m string) bool { return m == pdv1.RequesterOutboxService_GetOutboxSummary_FullMethodName })
	old = append(old, pdv1.RequesterOutboxService_ListOutboxMessages_FullMethodName, pdv1.RequesterOutboxService_StreamOutboxMessages_FullMethodName,
		pdv1.RequesterOutboxService_AcknowledgeOutboxMessage_FullMethodName)
	if _, err := principals.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "operator"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "rpcs", Value: old}}}}); err != nil {
		t.Fatal(err)
	}
	// A change of a principal makes every replica read principals again.
	if _, err := pdctl(tokenFile, "principal", "create", "-id", "billing", "-kind", "billing-system", "-tenant", "company"); err != nil {
		t.Fatal(err)
	}

	if _, err := pdctl(tokenFile, "outbox", "--messages"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("outbox --messages as the operator stored before: %v, want PERMISSION_DENIED", err)
	}
	_, err = pdctl(tokenFile, "outbox")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `principal update --id ID --rpc ""`) {
		t.Fatalf("outbox as the operator stored before: %v, want refused with how to be granted it", err)
	}
	if _, err := pdctl(tokenFile, "principal", "update", "--id", "operator", "--rpc", ""); err != nil {
		t.Fatalf("update the operator to its kind's defaults: %v", err)
	}
	if out, err := pdctl(tokenFile, "outbox"); err != nil || out != "waiting: 0\n" {
		t.Errorf("outbox after the update: %q, %v", out, err)
	}
	if _, err := pdctl(tokenFile, "outbox", "--ack"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("outbox --ack after the update: %v, want PERMISSION_DENIED", err)
	}
}
