package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

// reportCollector is a Report as Prometheus metrics: what -format
// openmetrics prints and -push sends. Every metric has the label plan
// (left out for a push, whose grouping key carries it); step metrics also
// have step and kind. A value the report does not know (null) is left
// out, never written as 0.
//
// It is an unchecked collector (Describe sends nothing): which metrics
// exist depends on the report's steps.
type reportCollector struct {
	r         *Report
	planLabel bool
}

func (c reportCollector) Describe(chan<- *prometheus.Desc) {}

func (c reportCollector) Collect(ch chan<- prometheus.Metric) {
	e := emitter{ch: ch}
	if c.planLabel {
		e.constLabels = prometheus.Labels{"plan": c.r.Plan}
	}
	r := c.r
	e.gauge("teckenrun_run_ok", "1 when every step that ran succeeded and nothing was interrupted, else 0", boolValue(r.OK))
	e.gauge("teckenrun_run_interrupted", "1 when a signal stopped the run, else 0", boolValue(r.Interrupted))
	e.gauge("teckenrun_run_start_time_seconds", "when the run started, in seconds since the Unix epoch", unixSeconds(r.StartedAt))
	e.gauge("teckenrun_run_end_time_seconds", "when the run ended, in seconds since the Unix epoch", unixSeconds(r.EndedAt))
	e.gauge("teckenrun_run_duration_seconds", "how long the run took", r.DurationS)
	for _, t := range r.Thresholds {
		if t.OK != nil {
			e.gauge("teckenrun_threshold_ok", "1 when the plan's threshold held, else 0; absent when its step was not selected", boolValue(*t.OK), "threshold", t.Expr)
		}
		if t.Value != nil {
			e.gauge("teckenrun_threshold_value", "the value a threshold was checked against, in the report's unit (the unit label: s, %, /s, or none)",
				*t.Value, "threshold", t.Expr, "unit", t.Unit)
		}
	}
	for _, s := range r.Steps {
		c.collectStep(e.with("step", s.Name, "kind", s.Kind), s)
	}
}

func (c reportCollector) collectStep(e emitter, s StepReport) {
	e.gauge("teckenrun_step_ok", "1 when the step succeeded, else 0", boolValue(s.OK))
	e.gauge("teckenrun_step_duration_seconds", "how long the step took", s.DurationS)
	if s.result == nil {
		return
	}
	if rr, ok := s.result.(requestResult); ok {
		collectRequests(e, rr.requestMetrics())
	}
	k, ok := kindByName(s.Kind)
	if !ok {
		return
	}
	for _, d := range k.metrics {
		v := d.get(s.result)
		if v == nil {
			continue
		}
		name := "teckenrun_" + strings.ReplaceAll(s.Kind, "-", "_") + "_" + strings.ReplaceAll(d.name, ".", "_")
		switch d.unit {
		case unitCount:
			e.counter(name+"_total", d.doc, *v)
		case unitSeconds:
			e.gauge(name+"_seconds", d.doc, *v)
		case unitRatio:
			e.gauge(strings.TrimSuffix(name, "_ratio")+"_ratio", d.doc+" (0..1)", *v)
		case unitPct:
			e.gauge(strings.TrimSuffix(name, "_pct")+"_ratio", d.doc+" (0..1)", *v/100)
		case unitRate:
			e.gauge(name+"_per_second", d.doc, *v)
		}
	}
}

// omQuantiles are the response time quantiles of teckenrun_response_time_seconds;
// quantile 1 is the maximum.
var omQuantiles = []struct {
	q   float64
	get func(d *metrics.DistSummary) float64
}{
	{0.5, func(d *metrics.DistSummary) float64 { return d.P50S }},
	{0.9, func(d *metrics.DistSummary) float64 { return d.P90S }},
	{0.95, func(d *metrics.DistSummary) float64 { return d.P95S }},
	{0.99, func(d *metrics.DistSummary) float64 { return d.P99S }},
	{0.999, func(d *metrics.DistSummary) float64 { return d.P999S }},
	{1, func(d *metrics.DistSummary) float64 { return d.MaxS }},
}

// collectRequests emits the metrics every request step has.
func collectRequests(e emitter, m *metrics.Summary) {
	e.counter("teckenrun_requests_total", "requests that finished, with an answer or after every retry", float64(m.Requests))
	e.counter("teckenrun_errors_total", "requests that got no HTTP answer", float64(m.Errors))
	e.counter("teckenrun_retries_total", "attempts after the first", float64(m.Retries))
	e.counter("teckenrun_cancelled_total", "requests cut off by an interrupt, in no other count", float64(m.Cancelled))
	if m.RatePerS != nil {
		e.gauge("teckenrun_requests_per_second", "achieved rate, from the first send to the last answer", *m.RatePerS)
	}
	for _, st := range m.ByStatus {
		e.counter("teckenrun_responses_total", "answers by HTTP status", float64(st.Requests), "status", strconv.Itoa(st.Status))
	}
	if d := m.ResponseTime; d != nil {
		qs := make(map[float64]float64, len(omQuantiles))
		for _, q := range omQuantiles {
			qs[q.q] = q.get(d)
		}
		e.summary("teckenrun_response_time_seconds", "response time, from a request's intended start to the end of its last attempt (quantile 1 is the maximum)",
			uint64(d.Count), d.SumS, qs)
	}
}

// emitter sends constant metrics with a fixed set of labels.
type emitter struct {
	ch          chan<- prometheus.Metric
	constLabels prometheus.Labels
	names       []string // variable labels, with values
	values      []string
}

// with returns an emitter that adds labels, given as name, value pairs.
func (e emitter) with(pairs ...string) emitter {
	for i := 0; i+1 < len(pairs); i += 2 {
		e.names = append(e.names[:len(e.names):len(e.names)], pairs[i])
		e.values = append(e.values[:len(e.values):len(e.values)], pairs[i+1])
	}
	return e
}

func (e emitter) desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, e.names, e.constLabels)
}

func (e emitter) value(name, help string, t prometheus.ValueType, v float64, pairs []string) {
	e = e.with(pairs...)
	d := e.desc(name, help)
	m, err := prometheus.NewConstMetric(d, t, v, e.values...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func (e emitter) gauge(name, help string, v float64, pairs ...string) {
	e.value(name, help, prometheus.GaugeValue, v, pairs)
}

func (e emitter) counter(name, help string, v float64, pairs ...string) {
	e.value(name, help, prometheus.CounterValue, v, pairs)
}

func (e emitter) summary(name, help string, count uint64, sum float64, quantiles map[float64]float64) {
	d := e.desc(name, help)
	m, err := prometheus.NewConstSummary(d, count, sum, quantiles, e.values...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// openMetricsReport writes the report in the OpenMetrics text format, as
// the node_exporter textfile collector and a Prometheus scrape read it.
func openMetricsReport(w io.Writer, r *Report) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(reportCollector{r: r, planLabel: true}); err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("openmetrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.FmtOpenMetrics_1_0_0)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	closer, ok := enc.(expfmt.Closer)
	if !ok {
		return errors.New("openmetrics: the encoder cannot write # EOF")
	}
	return closer.Close()
}

// pushTimeout bounds a push, so that an unreachable Pushgateway cannot
// hold a cron job up.
const pushTimeout = 30 * time.Second

// parsePushURL reads a -push URL. Its errors show the URL redacted.
func parsePushURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("must be the http(s) URL of a Pushgateway, such as http://localhost:9091; got %q", redactURL(s))
	}
	return u, nil
}

// pushReport replaces the metrics of the report's plan on a Pushgateway
// (job teckenrun, grouping label plan) with the report's. A user and
// password in the URL are sent as basic authentication and never shown.
// The push is made even when ctx was cancelled by an interrupt: the
// report of what finished is worth sending.
func pushReport(ctx context.Context, gateway *url.URL, r *Report) error {
	u := *gateway
	user := u.User
	u.User = nil
	p := push.New(u.String(), "teckenrun").Collector(reportCollector{r: r}).Grouping("plan", r.Plan)
	if user != nil {
		password, _ := user.Password()
		p.BasicAuth(user.Username(), password)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	defer cancel()
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("pushing the metrics to the Pushgateway: %w", err)
	}
	return nil
}
