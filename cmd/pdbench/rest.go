package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// api is the part of the service the benchmark calls: the generated gRPC
// client, or restAPI, which takes the same calls to the REST gateway.
type api interface {
	CreateSubject(context.Context, *pdv1.CreateSubjectRequest, ...grpc.CallOption) (*pdv1.CreateSubjectResponse, error)
	AccessSubject(context.Context, *pdv1.AccessSubjectRequest, ...grpc.CallOption) (*pdv1.AccessSubjectResponse, error)
	GetSubjectForPurpose(context.Context, *pdv1.GetSubjectForPurposeRequest, ...grpc.CallOption) (*pdv1.GetSubjectForPurposeResponse, error)
	RectifySubject(context.Context, *pdv1.RectifySubjectRequest, ...grpc.CallOption) (*pdv1.RectifySubjectResponse, error)
}

// restAPI calls the REST gateway at base (http://host:port) with a bearer
// token, one keep-alive connection per client goroutine. Errors come back
// as gRPC statuses, from the gateway's google.rpc.Status bodies.
type restAPI struct {
	base, token string
	http        *http.Client
}

func newRESTAPI(base, token string, clients int) *restAPI {
	return &restAPI{base: base, token: token, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, IdleConnTimeout: time.Minute},
	}}
}

var restJSON = protojson.MarshalOptions{UseProtoNames: true}

func (r *restAPI) CreateSubject(ctx context.Context, req *pdv1.CreateSubjectRequest, _ ...grpc.CallOption) (*pdv1.CreateSubjectResponse, error) {
	out := &pdv1.CreateSubjectResponse{}
	return out, r.call(ctx, http.MethodPost, "/v1/subjects", req, out)
}

func (r *restAPI) AccessSubject(ctx context.Context, req *pdv1.AccessSubjectRequest, _ ...grpc.CallOption) (*pdv1.AccessSubjectResponse, error) {
	out := &pdv1.AccessSubjectResponse{}
	return out, r.call(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(req.GetSubjectId())+":access", nil, out)
}

func (r *restAPI) GetSubjectForPurpose(ctx context.Context, req *pdv1.GetSubjectForPurposeRequest, _ ...grpc.CallOption) (*pdv1.GetSubjectForPurposeResponse, error) {
	out := &pdv1.GetSubjectForPurposeResponse{}
	path := "/v1/subjects/" + url.PathEscape(req.GetSubjectId()) + ":forPurpose?purpose=" + req.GetPurpose().String()
	return out, r.call(ctx, http.MethodGet, path, nil, out)
}

func (r *restAPI) RectifySubject(ctx context.Context, req *pdv1.RectifySubjectRequest, _ ...grpc.CallOption) (*pdv1.RectifySubjectResponse, error) {
	out := &pdv1.RectifySubjectResponse{}
	return out, r.call(ctx, http.MethodPost, "/v1/subjects/"+url.PathEscape(req.GetSubjectId())+":rectify", req, out)
}

// call sends body (none when nil) as JSON and reads a 200's JSON into out;
// any other status is the gRPC status of its google.rpc.Status body.
func (r *restAPI) call(ctx context.Context, method, path string, body, out proto.Message) error {
	var rd io.Reader
	if body != nil {
		b, err := restJSON.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	hr.Header.Set("Authorization", "Bearer "+r.token)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	res, err := r.http.Do(hr)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if res.StatusCode != http.StatusOK {
		var st spb.Status
		if err := protojson.Unmarshal(b, &st); err != nil || st.GetCode() == 0 {
			return status.Error(codes.Unknown, fmt.Sprintf("HTTP %d", res.StatusCode))
		}
		return status.ErrorProto(&st)
	}
	return protojson.Unmarshal(b, out)
}
