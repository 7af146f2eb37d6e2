package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Plan is a teckenrun plan: where to send traffic and the steps to run, in
// order. See README.md for the reference of every key.
type Plan struct {
	Name              string   `yaml:"name"`
	Host              string   `yaml:"host" jsonschema:"required"`
	SymbolicationHost string   `yaml:"symbolication_host,omitempty"`
	AuthTokenEnv      string   `yaml:"auth_token_env,omitempty"`
	UserAgent         string   `yaml:"user_agent"`
	Timeout           Duration `yaml:"timeout"`
	StopOnError       bool     `yaml:"stop_on_error"`
	// AllowProductionWrites lets upload steps write to a production host.
	AllowProductionWrites bool    `yaml:"allow_production_writes,omitempty"`
	Seed                  *uint64 `yaml:"seed,omitempty"`
	// Thresholds are "STEP.METRIC OP VALUE" conditions checked after the
	// run; one that does not hold makes the exit code 3.
	Thresholds []string `yaml:"thresholds,omitempty"`
	Steps      []Step   `yaml:"steps" jsonschema:"required"`

	thresholds []threshold // parsed by ValidateSteps
	file       string      // the name errors are reported against
	sha256     string      // of the plan file's bytes, hex
	dir        string      // relative paths in steps are resolved against it
	root       *yaml.Node  // the parsed document, for line numbers

	// onlyHost is the -host flag: every request of the run stays on it.
	onlyHost string
}

// Step is one entry of a plan's steps: exactly one kind, and an optional
// name. Each kind is one struct.
type Step struct {
	Name         string            `yaml:"name,omitempty"`
	Download     *DownloadStep     `yaml:"download,omitempty"`
	MakeStacks   *MakeStacksStep   `yaml:"make-stacks,omitempty"`
	Symbolicate  *SymbolicateStep  `yaml:"symbolicate,omitempty"`
	ListZips     *ListZipsStep     `yaml:"list-zips,omitempty"`
	MakeZips     *MakeZipsStep     `yaml:"make-zips,omitempty"`
	Mix          *MixStep          `yaml:"mix,omitempty"`
	Upload       *UploadStep       `yaml:"upload,omitempty"`
	Analyze      *AnalyzeStep      `yaml:"analyze,omitempty"`
	FetchRecords *FetchRecordsStep `yaml:"fetch-records,omitempty"`
	// Shards says how the step runs in a sharded run (-shard): split,
	// first or each (shard.go); by default the steps that can split
	// (splittable) do, the others run on shard 0 only (first).
	Shards string `yaml:"shards,omitempty" jsonschema:"enum=split,enum=first,enum=each"`
}

// workloads returns the kinds set on a step, in declaration order.
func (s *Step) workloads() []workload {
	var ws []workload
	v := reflect.ValueOf(s).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			if w, ok := f.Interface().(workload); ok {
				ws = append(ws, w)
			}
		}
	}
	return ws
}

// stepKinds lists the yaml keys of every step kind.
func stepKinds() []string {
	var kinds []string
	t := reflect.TypeFor[Step]()
	for i := range t.NumField() {
		if t.Field(i).Type.Kind() == reflect.Pointer {
			kinds = append(kinds, yamlKey(t.Field(i)))
		}
	}
	return kinds
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// defaultPlan returns the plan that a plan file's keys are decoded over.
func defaultPlan() *Plan {
	return &Plan{
		UserAgent:   "teckenrun/" + version,
		Timeout:     Duration(30 * time.Second),
		StopOnError: true,
	}
}

// LoadPlan reads, parses and validates the plan file at path.
func LoadPlan(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := ParsePlan(f, path)
	if err != nil {
		return nil, err
	}
	p.dir = filepath.Dir(path)
	return p, nil
}

// ParsePlan decodes a plan strictly: unknown and duplicate keys, a second
// document and an empty input are errors naming name and the line.
// ${VAR} references are expanded from the environment first. Defaults are
// applied; call Validate before running the plan.
func ParsePlan(r io.Reader, name string) (*Plan, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	data, err := expandEnv(raw, name)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err, nil)
	}
	p := defaultPlan()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, usageErrorf("%s: plan is empty", name)
		}
		return nil, yamlError(name, err, &root)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, usageErrorf("%s:%d: a plan is one YAML document; remove the second one (starting with ---)", name, extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err, &root)
	}
	sum := sha256.Sum256(raw)
	p.file, p.root, p.dir, p.sha256 = name, &root, ".", hex.EncodeToString(sum[:])
	p.setDefaults()
	return p, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} with the variable's value outside comments.
// Every unset variable is reported with its line.
func expandEnv(data []byte, name string) ([]byte, error) {
	var errs []error
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		line, comment := line[:commentStart(line)], line[commentStart(line):]
		lines[i] = envRef.ReplaceAllFunc(line, func(ref []byte) []byte {
			v, ok := os.LookupEnv(string(ref[2 : len(ref)-1]))
			if !ok {
				errs = append(errs, usageErrorf("%s:%d: environment variable %s is not set", name, i+1, ref[2:len(ref)-1]))
			}
			return []byte(v)
		})
		lines[i] = append(lines[i], comment...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return bytes.Join(lines, nil), nil
}

// commentStart returns where a line's comment starts: at a # that begins
// the line or follows a blank, outside a quoted scalar; len(line) when
// there is none.
func commentStart(line []byte) int {
	var quote byte    // the quote of the scalar being read, or 0
	prev := byte(' ') // the last non-blank byte outside quotes
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '"' && c == '\\', quote == '\'' && c == '\'' && i+1 < len(line) && line[i+1] == '\'':
			i++ // an escaped character, perhaps a quote
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '"' || c == '\'') && strings.IndexByte(" :-[{,", prev) >= 0:
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return i
		}
		if quote == 0 && c != ' ' && c != '\t' {
			prev = c
		}
	}
	return len(line)
}

var (
	yamlLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlNotFound  = regexp.MustCompile(`^field (\S+) not found in type main\.(\w+)$`)
	yamlWrongType = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into ([^\\s:]+)(?:: (.*))?$")
)

// yamlError turns a yaml decoding error into "file:line: message" lines;
// a value of the wrong type is named by its field path, found in root.
func yamlError(name string, err error, root *yaml.Node) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs []error
	used := map[*yaml.Node]bool{}
	for _, m := range msgs {
		sub := yamlLine.FindStringSubmatch(m)
		if sub == nil {
			errs = append(errs, usageErrorf("%s: %s", name, strings.TrimPrefix(m, "yaml: ")))
			continue
		}
		msg := sub[2]
		if nf := yamlNotFound.FindStringSubmatch(msg); nf != nil {
			msg = unknownKeyMessage(nf[1], nf[2])
		}
		if wt := yamlWrongType.FindStringSubmatch(msg); wt != nil && root != nil {
			line, _ := strconv.Atoi(sub[1]) // the regexp admits only digits
			if path, n := findValue(root, line, wt[1], wt[2], wt[3], used); n != nil {
				where := name + ": "
				if path != "" {
					where += path + ": "
				}
				if reason := wt[4]; reason != "" {
					errs = append(errs, usageErrorf("%s%s (line %d)", where, reason, line))
				} else {
					errs = append(errs, usageErrorf("%swant %s, got %s (line %d)", where, wantType(wt[3]), gotValue(n), line))
				}
				continue
			}
		}
		errs = append(errs, usageErrorf("%s:%s: %s", name, sub[1], msg))
	}
	return errors.Join(errs...)
}

// findValue finds the value node that yaml's "cannot unmarshal" message
// is about: on line, with tag, decoded into goType, and with value (which
// yaml cuts to 7 characters and "..." when it is longer than 10). It
// returns the node's field path, such as steps[0].download.concurrency.
// Nodes in used are skipped, so that two errors on one line find two.
func findValue(root *yaml.Node, line int, tag, value, goType string, used map[*yaml.Node]bool) (string, *yaml.Node) {
	matches := func(n *yaml.Node, t reflect.Type) bool {
		if n.Line != line || n.ShortTag() != tag || used[n] || t == nil || t.String() != goType {
			return false
		}
		if v, cut := strings.CutSuffix(value, "..."); cut && len(n.Value) > 10 {
			return strings.HasPrefix(n.Value, v)
		}
		return value == "" || n.Value == value
	}
	// walk follows the Go type t that each node is decoded into (nil
	// when it is not known), as yaml does.
	var walk func(n *yaml.Node, path string, t reflect.Type) (string, *yaml.Node)
	walk = func(n *yaml.Node, path string, t reflect.Type) (string, *yaml.Node) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if matches(n, t) {
			used[n] = true
			return path, n
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, found := walk(c, path, t); found != nil {
					return p, found
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				var ft reflect.Type
				if t != nil && t.Kind() == reflect.Struct {
					for j := range t.NumField() {
						if yamlKey(t.Field(j)) == key {
							ft = t.Field(j).Type
						}
					}
				}
				if path != "" {
					key = path + "." + key
				}
				if p, found := walk(n.Content[i+1], key, ft); found != nil {
					return p, found
				}
			}
		case yaml.SequenceNode:
			var et reflect.Type
			if t != nil && t.Kind() == reflect.Slice {
				et = t.Elem()
			}
			for i, c := range n.Content {
				if p, found := walk(c, fmt.Sprintf("%s[%d]", path, i), et); found != nil {
					return p, found
				}
			}
		}
		return "", nil
	}
	return walk(root, "", reflect.TypeFor[Plan]())
}

// wantType says in words what a Go type in yaml's messages takes.
func wantType(goType string) string {
	switch goType {
	case "int", "int64", "int32":
		return "an integer"
	case "uint64", "uint", "uint32":
		return "a whole number of 0 or more"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	case "[]main.Step":
		return "a list of steps"
	case "main.Step":
		return "a step (a mapping with one kind and an optional name)"
	case "main.Plan":
		return "a mapping of plan keys"
	}
	if t, ok := planTypes[strings.TrimPrefix(goType, "main.")]; ok {
		return "a mapping of " + kindOfType(t) + " keys"
	}
	return goType
}

// gotValue says what a node holds: a scalar quoted, else its kind.
func gotValue(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// planTypes maps the Go type names in yaml's errors to what the user wrote.
var planTypes = map[string]reflect.Type{
	"Plan":             reflect.TypeFor[Plan](),
	"Step":             reflect.TypeFor[Step](),
	"DownloadStep":     reflect.TypeFor[DownloadStep](),
	"MakeStacksStep":   reflect.TypeFor[MakeStacksStep](),
	"SymbolicateStep":  reflect.TypeFor[SymbolicateStep](),
	"ListZipsStep":     reflect.TypeFor[ListZipsStep](),
	"MakeZipsStep":     reflect.TypeFor[MakeZipsStep](),
	"UploadStep":       reflect.TypeFor[UploadStep](),
	"AnalyzeStep":      reflect.TypeFor[AnalyzeStep](),
	"AnalyzeUploads":   reflect.TypeFor[AnalyzeUploads](),
	"AnalyzeLogs":      reflect.TypeFor[AnalyzeLogs](),
	"FetchRecordsStep": reflect.TypeFor[FetchRecordsStep](),
	"MixStep":          reflect.TypeFor[MixStep](),
	"MixScenarios":     reflect.TypeFor[MixScenarios](),
	"MixDownload":      reflect.TypeFor[MixDownload](),
	"MixSymbolicate":   reflect.TypeFor[MixSymbolicate](),
	"Stage":            reflect.TypeFor[Stage](),
}

func unknownKeyMessage(key, typeName string) string {
	t, ok := planTypes[typeName]
	if !ok {
		return fmt.Sprintf("unknown key %q", key)
	}
	var known []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" && k != "-" && t.Field(i).IsExported() {
			known = append(known, k)
		}
	}
	where := "in " + kindOfType(t) + " step"
	switch typeName {
	case "Plan":
		where = "at the top of the plan"
	case "Step":
		where = "in a step (a step is one of: " + strings.Join(stepKinds(), ", ") + ")"
	}
	msg := fmt.Sprintf("unknown key %q %s", key, where)
	if best := closest(key, known); best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	return msg
}

// kindOfType returns the step kind whose struct is t.
func kindOfType(t reflect.Type) string {
	st := reflect.TypeFor[Step]()
	for i := range st.NumField() {
		if f := st.Field(i); f.Type.Kind() == reflect.Pointer && f.Type.Elem() == t {
			return yamlKey(f)
		}
	}
	for i := range st.NumField() { // a part of a kind, such as analyze.logs
		if k := st.Field(i).Type; k.Kind() == reflect.Pointer && k.Elem().Kind() == reflect.Struct {
			for j := range k.Elem().NumField() {
				if f := k.Elem().Field(j); f.Type.Kind() == reflect.Pointer && f.Type.Elem() == t {
					return yamlKey(st.Field(i)) + "." + yamlKey(f)
				}
			}
		}
	}
	return t.Name()
}

// closest returns the candidate within edit distance 2 of s, if any.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// setDefaults fills in keys that depend on other keys, and step defaults.
func (p *Plan) setDefaults() {
	if p.SymbolicationHost == "" {
		p.SymbolicationHost = p.Host
	}
	seen := map[string]int{}
	for i := range p.Steps {
		s := &p.Steps[i]
		ws := s.workloads()
		if len(ws) != 1 {
			continue // Validate reports it
		}
		ws[0].setDefaults(p)
		if s.Name == "" {
			k := ws[0].kind()
			seen[k]++
			s.Name = k
			if seen[k] > 1 {
				s.Name = fmt.Sprintf("%s-%d", k, seen[k])
			}
		}
	}
}

// Validate reports every problem of the plan at once, each with its field
// path and line.
func (p *Plan) Validate() error {
	all := make([]int, len(p.Steps))
	for i := range all {
		all[i] = i
	}
	return p.ValidateSteps(all, false)
}

// ValidateSteps is Validate for a run of the given steps only (ascending
// indexes, as selectSteps returns them): the steps that will not run are
// not checked, and each step's needs must be met by the steps that run
// before it. only says the steps were chosen with -only.
func (p *Plan) ValidateSteps(steps []int, only bool) error {
	v := &validator{plan: p, steps: steps, only: only}
	if p.Host == "" {
		v.add("host", "is required: a URL such as https://symbols.stage.mozaws.net, or embedded")
	} else {
		v.checkHost("host", p.Host)
	}
	if p.SymbolicationHost != p.Host {
		v.checkHost("symbolication_host", p.SymbolicationHost)
	}
	if p.AuthTokenEnv != "" && !envName.MatchString(p.AuthTokenEnv) {
		v.add("auth_token_env", "must be the name of an environment variable (upper-case letters, digits and _, such as TECKEN_AUTH_TOKEN), not the token; the value given is not shown")
	}
	if p.Timeout <= 0 {
		v.add("timeout", "must be more than 0, got %s", time.Duration(p.Timeout))
	}
	if len(p.Steps) == 0 {
		v.add("steps", "a plan needs at least one step (one of: %s)", strings.Join(stepKinds(), ", "))
	}
	p.thresholds = p.thresholds[:0]
	for i, expr := range p.Thresholds {
		t, err := p.parseThreshold(expr)
		if err != nil {
			v.add(fmt.Sprintf("thresholds[%d]", i), "%v", err)
			continue
		}
		p.thresholds = append(p.thresholds, t)
	}
	names := map[string]int{}
	for i := range p.Steps {
		s := &p.Steps[i]
		if j, dup := names[s.Name]; dup && s.Name != "" {
			v.add(fmt.Sprintf("steps[%d].name", i), "%q is already the name of steps[%d]; step names must be unique", s.Name, j)
		}
		names[s.Name] = i
	}
	for _, i := range steps {
		s := &p.Steps[i]
		path := fmt.Sprintf("steps[%d]", i)
		ws := s.workloads()
		switch len(ws) {
		case 0:
			v.add(path, "a step needs a kind, one of: %s", strings.Join(stepKinds(), ", "))
		case 1:
			path += "." + ws[0].kind()
			ws[0].validate(v, path)
			v.checkNeeds(i, path, ws[0])
			v.checkShardMode(fmt.Sprintf("steps[%d].shards", i), s, ws[0])
		default:
			kinds := make([]string, len(ws))
			for j, w := range ws {
				kinds[j] = w.kind()
			}
			v.add(path, "a step has exactly one kind, this one has %s; make them separate steps", strings.Join(kinds, " and "))
		}
	}
	v.checkStaysOnHost()
	return v.err()
}

// envName is what auth_token_env must look like: a portable environment
// variable name. Tecken's tokens are lower-case hex, so a token put there
// by mistake is never taken for a name (and never printed).
var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// validator collects validation problems.
type validator struct {
	plan  *Plan
	steps []int // the steps that will run
	only  bool  // steps were chosen with -only
	errs  []error
}

func (v *validator) add(path, format string, args ...any) {
	msg := fmt.Sprintf("%s: %s: %s", v.plan.file, path, fmt.Sprintf(format, args...))
	if line := v.plan.line(path); line > 0 {
		msg += fmt.Sprintf(" (line %d)", line)
	}
	v.errs = append(v.errs, usageError{errors.New(msg)})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) checkHost(path, host string) {
	if err := checkHostURL(host); err != nil {
		v.add(path, "%v", err)
	}
}

func (v *validator) atLeast(path string, got, min int) {
	if got < min {
		v.add(path, "must be at least %d, got %d", min, got)
	}
}

func (v *validator) nonNegative(path string, got float64) {
	if got < 0 || math.IsNaN(got) {
		v.add(path, "must not be negative, got %v", got)
	}
}

// line returns the line of the node at a field path such as
// "steps[2].download.concurrency", or of its deepest existing parent.
func (p *Plan) line(path string) int {
	if p.root == nil || len(p.root.Content) == 0 {
		return 0
	}
	n, line := p.root.Content[0], p.root.Content[0].Line
	for _, seg := range strings.Split(path, ".") {
		key, idx := seg, -1
		if k, rest, ok := strings.Cut(seg, "["); ok {
			key = k
			idx, _ = strconv.Atoi(strings.TrimSuffix(rest, "]"))
		}
		next := mappingValue(n, key)
		if next == nil {
			return line
		}
		n, line = next, next.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n, line = n.Content[idx], n.Content[idx].Line
		}
	}
	return line
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// resolve returns path relative to the plan's directory, unless absolute.
func (p *Plan) resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(p.dir, path)
}

// Duration is a time.Duration written in plans as a Go duration ("30s").
type Duration time.Duration

// UnmarshalYAML accepts only strings that time.ParseDuration accepts.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "main.Duration", "want a duration such as 30s, 5m or 1h30m, got "+gotValue(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return typeError(n, "main.Duration", fmt.Sprintf("%q is not a duration; write it with a unit, such as 30s, 5m or 1h30m", n.Value))
	}
	if v < 0 {
		return typeError(n, "main.Duration", fmt.Sprintf("duration %q must not be negative", n.Value))
	}
	*d = Duration(v)
	return nil
}

// typeError is the error of a custom UnmarshalYAML: written as yaml
// writes its own type errors, with the reason after them, so that yaml
// reports it with the others and yamlError names its field path.
func typeError(n *yaml.Node, goType, reason string) error {
	value := ""
	if n.Kind == yaml.ScalarNode {
		value = " `" + n.Value + "`"
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s%s into %s: %s", n.Line, n.ShortTag(), value, goType, reason)}}
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Size is a byte count written in plans as "250mb", "1.5GB" or "512k"
// (binary units, any case; a bare number is bytes).
type Size int64

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$`)

var sizeUnits = map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}

// ParseSize parses a size such as "250mb".
func ParseSize(s string) (Size, error) {
	m := sizeRe.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size; write it like 250mb, 1.5GB or 512k", s)
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("%q has an unknown unit %q; use b, k, m, g or t", s, m[2])
	}
	n, _ := strconv.ParseFloat(m[1], 64) // the regexp admits only valid numbers
	if n*unit > math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * unit), nil
}

// UnmarshalYAML parses the size with ParseSize.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "main.Size", "want a size such as 250mb, 1.5GB or 512k, got "+gotValue(n))
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return typeError(n, "main.Size", err.Error())
	}
	*s = v
	return nil
}

// MarshalYAML writes the size in the largest unit that keeps it exact.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"tb", 1 << 40}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "b"
}

// usesEmbeddedS3 reports whether a make-zips step reads the embedded S3.
func (p *Plan) usesEmbeddedS3() bool {
	for i := range p.Steps {
		if m := p.Steps[i].MakeZips; m != nil && m.Endpoint == "embedded" {
			return true
		}
		if a := p.Steps[i].Analyze; a != nil && a.Logs != nil && a.Logs.Endpoint == "embedded" {
			return true
		}
	}
	return false
}

// usesEmbedded reports whether the run needs the embedded emulator.
func (p *Plan) usesEmbedded() bool {
	if p.Host == "embedded" || p.SymbolicationHost == "embedded" {
		return true
	}
	for i := range p.Steps {
		if l := p.Steps[i].ListZips; l != nil && l.TaskCluster == "embedded" {
			return true
		}
		if f := p.Steps[i].FetchRecords; f != nil && f.URL == "embedded" {
			return true
		}
	}
	return false
}
