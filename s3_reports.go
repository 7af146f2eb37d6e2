package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Reports in S3: a shard's -out s3://bucket/runs/2026-12-01/shard-3.json
// puts its report there, and teckenrun merge reads s3://bucket/key.json or
// every *.json under s3://bucket/prefix/. The client uses the standard
// credential chain (environment, shared files, web identity, instance
// role); -s3-endpoint points it at an S3-compatible store, path-style.

// s3Timeout bounds one S3 transfer of a report.
const s3Timeout = 2 * time.Minute

// reportStore is the part of the S3 API that reports use; *s3.Client has it.
type reportStore interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// isS3URL reports whether a report's place is in S3.
func isS3URL(s string) bool { return strings.HasPrefix(s, "s3://") }

// parseS3URL splits s3://bucket/key into the bucket and the key, which
// may be empty or a prefix ending in /.
func parseS3URL(s string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	bucket, key, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" {
		return "", "", fmt.Errorf("%q is not s3://BUCKET/KEY", s)
	}
	return bucket, key, nil
}

// newReportStore wires an S3 client; endpoint is -s3-endpoint ("" for
// AWS). Without a region in the environment or the shared config, it is
// us-east-1, which S3-compatible stores accept.
func newReportStore(ctx context.Context, endpoint string) (*s3.Client, error) {
	return newS3Client(ctx, "", endpoint, false)
}

// putReportS3 writes the JSON report to an s3:// URL, for -out. It runs
// after the run, also an interrupted one, so it has a context of its own.
func putReportS3(url, endpoint string, r *Report) error {
	ctx, cancel := context.WithTimeout(context.Background(), s3Timeout)
	defer cancel()
	client, err := newReportStore(ctx, endpoint)
	if err != nil {
		return err
	}
	return putReport(ctx, client, url, r)
}

// putReport writes the JSON report to the object at url.
func putReport(ctx context.Context, st reportStore, url string, r *Report) error {
	bucket, key, err := parseS3URL(url)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := jsonReport(&b, r); err != nil {
		return err
	}
	_, err = st.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(b.Bytes()), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("s3: put object %s: %w", url, err)
	}
	return nil
}

// checkS3Out checks, before the run, an -out in S3: a bucket and the
// report's key, not a folder.
func checkS3Out(url string) error {
	_, key, err := parseS3URL(url)
	switch {
	case err != nil:
		return usageErrorf("-out: %w", err)
	case key == "" || strings.HasSuffix(key, "/"):
		return usageErrorf("-out %s names a folder; give the report's key, such as %sshard-0.json", url, strings.TrimSuffix(url, "/")+"/")
	}
	return nil
}

// getReports reads the report at url, or every *.json object under it
// when url ends in / (or names a bucket alone), in key order.
func getReports(ctx context.Context, st reportStore, url string) ([]namedReport, error) {
	bucket, key, err := parseS3URL(url)
	if err != nil {
		return nil, err
	}
	keys := []string{key}
	if key == "" || strings.HasSuffix(key, "/") {
		if keys, err = listReports(ctx, st, bucket, key); err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, notYet{fmt.Errorf("%s holds no .json reports", url)}
		}
	}
	out := make([]namedReport, 0, len(keys))
	for _, k := range keys {
		name := "s3://" + bucket + "/" + k
		r, err := getReport(ctx, st, bucket, k, name)
		if err != nil {
			return nil, err
		}
		out = append(out, namedReport{name, r})
	}
	return out, nil
}

// listReports lists the keys ending in .json under prefix.
func listReports(ctx context.Context, st reportStore, bucket, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(st, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); strings.HasSuffix(k, ".json") {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func getReport(ctx context.Context, st reportStore, bucket, key, name string) (*Report, error) {
	out, err := st.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound") {
			return nil, notYet{fmt.Errorf("%s: no such object (to merge every report under a prefix, end it with /)", name)}
		}
		return nil, fmt.Errorf("s3: get object %s: %w", name, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("s3: reading %s: %w", name, err)
	}
	return DecodeReport(bytes.NewReader(raw), name)
}
