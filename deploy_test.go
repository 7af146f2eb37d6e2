package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const deployDir = "deploy/kubernetes"

// kustomization is the part of kustomize's Kustomization that
// deploy/kubernetes uses; decoding strictly into it refuses any other key.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	GeneratorOptions struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"generatorOptions"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// decodeStrict decodes a manifest into v as the API server would, and
// refuses unknown and duplicate keys.
func decodeStrict(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestKubernetesManifests decodes every manifest of deploy/kubernetes
// strictly into the Kubernetes API types and checks what makes the
// shards of one run: an Indexed Job of N pods that each know N, the plan
// from the kustomization's ConfigMap, one image, the token from a Secret.
func TestKubernetesManifests(t *testing.T) {
	var k kustomization
	decodeStrict(t, "kustomization.yaml", &k)
	var cron batchv1.CronJob
	var job batchv1.Job
	var sa corev1.ServiceAccount
	decodeStrict(t, "cronjob.yaml", &cron)
	decodeStrict(t, "job.yaml", &job)
	decodeStrict(t, "serviceaccount.yaml", &sa)

	// Every YAML file is one of those, the plan or the kustomization.
	files, _ := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	for _, f := range files {
		if name := filepath.Base(f); !slices.Contains([]string{"kustomization.yaml", "cronjob.yaml", "job.yaml", "serviceaccount.yaml", "plan.yaml"}, name) {
			t.Errorf("%s is not checked by this test", name)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(deployDir, r)); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
	if !slices.Contains(k.Resources, "cronjob.yaml") || !slices.Contains(k.Resources, "serviceaccount.yaml") {
		t.Errorf("kustomization resources %v lack cronjob.yaml or serviceaccount.yaml", k.Resources)
	}
	if cron.Kind != "CronJob" || job.Kind != "Job" || sa.Kind != "ServiceAccount" || k.Kind != "Kustomization" {
		t.Errorf("kinds %q %q %q %q", cron.Kind, job.Kind, sa.Kind, k.Kind)
	}
	if len(k.ConfigMapGenerator) != 1 || !k.GeneratorOptions.DisableNameSuffixHash {
		t.Fatalf("want one ConfigMap, named without a hash (job.yaml mounts it by name): %+v", k)
	}
	planMap := k.ConfigMapGenerator[0]
	for _, f := range planMap.Files {
		if _, err := os.Stat(filepath.Join(deployDir, f)); err != nil {
			t.Errorf("ConfigMap file %s: %v", f, err)
		}
	}
	if len(k.Images) != 1 {
		t.Fatalf("want one image in the kustomization, got %+v", k.Images)
	}
	image := k.Images[0].Name + ":" + k.Images[0].NewTag

	// The one-off Job is the CronJob's, so that the two never drift apart.
	if !reflect.DeepEqual(job.Spec, cron.Spec.JobTemplate.Spec) {
		t.Errorf("job.yaml's spec differs from cronjob.yaml's jobTemplate")
	}
	if job.GenerateName == "" || job.Name != "" {
		t.Errorf("job.yaml: want generateName (one Job per kubectl create), got name %q generateName %q", job.Name, job.GenerateName)
	}
	if cron.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q: two runs at once would load the host twice", cron.Spec.ConcurrencyPolicy)
	}

	spec := cron.Spec.JobTemplate.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode %v, want Indexed (JOB_COMPLETION_INDEX is the shard)", spec.CompletionMode)
	}
	if spec.Completions == nil || spec.Parallelism == nil || *spec.Completions != *spec.Parallelism || *spec.Completions < 2 {
		t.Fatalf("completions %v and parallelism %v: want them equal, every shard at once", spec.Completions, spec.Parallelism)
	}
	n := strconv.Itoa(int(*spec.Completions))
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: a shard run again would send its requests twice", pod.RestartPolicy)
	}
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName %q, the ServiceAccount is %q", pod.ServiceAccountName, sa.Name)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != planMap.Name {
		t.Errorf("volumes %+v: want the ConfigMap %s", pod.Volumes, planMap.Name)
	}
	if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
		t.Fatalf("want the init container shard and the container merge, got %d and %d", len(pod.InitContainers), len(pod.Containers))
	}
	shard, merge := pod.InitContainers[0], pod.Containers[0]
	env := func(c corev1.Container, name string) *corev1.EnvVar {
		for i := range c.Env {
			if c.Env[i].Name == name {
				return &c.Env[i]
			}
		}
		return nil
	}
	for _, c := range []corev1.Container{shard, merge} {
		if c.Image != image {
			t.Errorf("container %s: image %q, the kustomization sets %q", c.Name, c.Image, image)
		}
		if e := env(c, envShards); e == nil || e.Value != n {
			t.Errorf("container %s: %s %+v, want %s (completions)", c.Name, envShards, e, n)
		}
		if !slices.Equal(c.Args[slices.Index(c.Args, "-shard"):][:2], []string{"-shard", "auto"}) {
			t.Errorf("container %s: args %v, want -shard auto", c.Name, c.Args)
		}
		// Every $(VAR) in the args is a variable of the container.
		for _, m := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(strings.Join(c.Args, " "), -1) {
			if env(c, m[1]) == nil {
				t.Errorf("container %s: args use $(%s), which it does not set", c.Name, m[1])
			}
		}
	}
	if merge.Args[0] != "merge" || !slices.Contains(merge.Args, "-wait") {
		t.Errorf("merge container args %v: want merge -wait", merge.Args)
	}

	// The plan the shard runs is the one in the ConfigMap, and valid.
	planArg := shard.Args[len(shard.Args)-1]
	mount := shard.VolumeMounts[0]
	if mount.Name != pod.Volumes[0].Name || filepath.Dir(planArg) != mount.MountPath || !slices.Contains(planMap.Files, filepath.Base(planArg)) {
		t.Errorf("the shard runs %s; the ConfigMap %v is mounted at %s", planArg, planMap.Files, mount.MountPath)
	}
	plan, err := LoadPlan(filepath.Join(deployDir, filepath.Base(planArg)))
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Validate(); err != nil {
		t.Error(err)
	}
	if plan.Seed == nil {
		t.Error("plan.yaml has no seed: -shard refuses it")
	}

	// The token comes from a Secret, and no value looks like one.
	if e := env(shard, plan.AuthTokenEnv); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.Value != "" {
		t.Errorf("%s: %+v, want it from a Secret", plan.AuthTokenEnv, e)
	}
	secretish := regexp.MustCompile(`(?i)token|secret|password|key`)
	for _, c := range []corev1.Container{shard, merge} {
		for _, e := range c.Env {
			if secretish.MatchString(e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("container %s: %s is not from a Secret", c.Name, e.Name)
			}
		}
	}
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		if regexp.MustCompile(`\b[0-9a-f]{32}\b`).Match(raw) {
			t.Errorf("%s holds something shaped like a Tecken token", f)
		}
	}
}

// TestKubernetesDecodingIsStrict: a misspelt key fails the decoding that
// TestKubernetesManifests relies on.
func TestKubernetesDecodingIsStrict(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "cronjob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cron batchv1.CronJob
	typo := strings.Replace(string(raw), "completionMode:", "completionMod:", 1)
	if err := yaml.UnmarshalStrict([]byte(typo), &cron); err == nil || !strings.Contains(err.Error(), "completionMod") {
		t.Errorf("a misspelt key decoded: %v", err)
	}
}
