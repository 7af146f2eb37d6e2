package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestKindsMatchStep keeps the registry and the plan's Step struct equal:
// a kind added to one and not the other fails here.
func TestKindsMatchStep(t *testing.T) {
	if got, want := stepKinds(), kindNames(); !slices.Equal(got, want) {
		t.Errorf("Step has kinds %v, the registry %v", got, want)
	}
	for _, k := range kinds {
		if k.result() == nil {
			t.Errorf("%s: result() is nil", k.name)
		}
	}
}

func TestOnlyChecksDependencies(t *testing.T) {
	for _, tt := range []struct {
		only string
		want string // "" = valid
	}{
		{"symbolicate", "plans/demo.yaml: steps[2].symbolicate.stacks_dir: needs stack files from an earlier make-stacks step, and none runs before this one (with -only, include that step); or set stacks_dir to a folder or glob of stack files (line 26)"},
		{"make-stacks,symbolicate", ""},
		{"upload-urls", "steps[5].upload.urls_from: needs zip URLs from an earlier list-zips step"},
		{"download-uploaded", "steps[8].download.uploaded: needs uploaded symbol files from an earlier upload step"},
		{"make-zips,upload-zips,download-uploaded", ""},
		{"upload-zips", "steps[7].upload.zips_dir: needs zips from an earlier make-zips step"},
	} {
		t.Run(tt.only, func(t *testing.T) {
			_, _, err := runArgs(t, terminal{}, "-validate", "-only", tt.only, "plans/demo.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("-only %s: %v", tt.only, err)
				}
				return
			}
			var ue usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("-only %s: %v, want a usage error with %q", tt.only, err, tt.want)
			}
			if code := exitCode(err, &strings.Builder{}); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
		})
	}
}

// TestOnlySkipsValidationOfOtherSteps: an upload step's missing token
// does not block a run of the download step alone.
func TestOnlySkipsValidationOfOtherSteps(t *testing.T) {
	plan := "host: http://127.0.0.1:1\nauth_token_env: TECKENRUN_UNSET_TOKEN\nsteps:\n" +
		"  - download: {csv: q.csv}\n  - upload: {zips_dir: x}\n"
	p, err := ParsePlan(strings.NewReader(plan), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "TECKENRUN_UNSET_TOKEN") {
		t.Fatalf("the whole plan: %v, want the token error", err)
	}
	if err := p.ValidateSteps([]int{0}, true); err != nil {
		t.Errorf("-only download: %v", err)
	}
}
