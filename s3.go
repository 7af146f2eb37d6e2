package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// objectGetter is the one S3 call make-zips needs; *s3.Client has it.
type objectGetter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// s3Fetcher reads symbol files from s3://bucket/prefix.
type s3Fetcher struct {
	client         objectGetter
	bucket, prefix string
	// timeout limits a whole fetch: the SDK's attempts and the body.
	timeout time.Duration
}

// newS3Fetcher reads symbol files from s3://bucket/prefix (newS3Client).
func newS3Fetcher(ctx context.Context, bucket, prefix, region, endpoint string, anonymous bool, timeout time.Duration) (*s3Fetcher, error) {
	client, err := newS3Client(ctx, region, endpoint, anonymous)
	if err != nil {
		return nil, err
	}
	if prefix != "" && prefix[len(prefix)-1] != '/' {
		prefix += "/"
	}
	return &s3Fetcher{client: client, bucket: bucket, prefix: prefix, timeout: timeout}, nil
}

func (f *s3Fetcher) fetch(ctx context.Context, key string) (io.ReadCloser, bool, error) {
	fctx, cancel := context.WithTimeoutCause(ctx, f.timeout, &timeoutError{after: f.timeout})
	out, err := f.client.GetObject(fctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(f.prefix + key)})
	if err != nil {
		if fctx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(fctx) // the SDK says "context deadline exceeded"
		}
		cancel()
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "AccessDenied") {
			return nil, false, fmt.Errorf("%w (s3: %s)", errNotFound, apiErr.ErrorCode())
		}
		return nil, false, fmt.Errorf("s3: get object %s: %w", f.prefix+key, err)
	}
	return &cancelBody{ReadCloser: out.Body, cancel: cancel}, aws.ToString(out.ContentEncoding) == "gzip", nil
}

// newS3Client wires an S3 client: the standard credential chain, or none
// with anonymous; endpoint points it at an S3-compatible store.
func newS3Client(ctx context.Context, region, endpoint string, anonymous bool) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot load aws config: %w", err)
	}
	if cfg.Region == "" { // neither given nor configured: S3-compatible stores accept it
		cfg.Region = "us-east-1"
	}
	if anonymous {
		cfg.Credentials = aws.AnonymousCredentials{}
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		// Validate checksums only where S3 requires them, and say nothing
		// on stderr when a store (or an older object) has none.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	}), nil
}
