package metrics

import "time"

// Summary is the JSON form of a step's Metrics. Keys are always present:
// null for what cannot be known, [] for empty lists.
type Summary struct {
	Stats
	Load
	// ByStatus has one entry per HTTP status answered, ascending; [] when
	// none. An entry has the keys of Stats (its errors, transport_errors and
	// cancelled are 0: those samples have no status) and no by_status or
	// timeline.
	ByStatus []StatusSummary `json:"by_status"`
	// Timeline counts requests per interval of their Done time.
	Timeline TimelineSummary `json:"timeline"`
}

// Load is how a step's schedule went: the rate asked for and how well
// the workers kept up with it. Only a step's Metrics have it, not its
// per-status entries.
type Load struct {
	// TargetRatePerS is the rate the schedule asked for (over stages, its
	// mean); null for a step without a rate. Merged shards add up theirs.
	TargetRatePerS *float64 `json:"target_rate_per_s"`
	// Missed counts the slots of the schedule that came due before the
	// step's end but were never sent.
	Missed int64 `json:"missed"`
	// Late counts the requests sent more than LateAfter after their slot;
	// LatePct is their share of the requests, null without a schedule or
	// without requests.
	Late    int64    `json:"late"`
	LatePct *float64 `json:"late_pct"`
	// Saturated is true when more than 1 % of the slots went out more
	// than LateAfter late while the step ran its max_concurrency workers:
	// the client, not the server, was the limit (response time still
	// counts from the slot).
	Saturated bool `json:"saturated"`
	// PeakWorkers is the most workers the step ran at once (merged shards
	// add up theirs).
	PeakWorkers int64 `json:"peak_workers"`
	// Stages are the step's load shape, when it has stages ([] without):
	// each stage's length, and the rate or the workers it ramps to.
	Stages []LoadStage `json:"stages"`
}

// LoadStage is one stage of a step's load shape.
type LoadStage struct {
	DurationS float64 `json:"duration_s"`
	// Rate is the rate the stage ramps to (per second), or null for a
	// concurrency stage; Concurrency the workers, or null for a rate stage.
	Rate        *float64 `json:"rate"`
	Concurrency *int     `json:"concurrency"`
}

// StatusSummary is the JSON form of the requests answered with one status.
type StatusSummary struct {
	// Status is the HTTP status.
	Status int `json:"status"`
	Stats
}

// Stats are the keys shared by a step's summary and its per-status entries.
type Stats struct {
	// Requests is the number of samples not cancelled, errors included.
	Requests int64 `json:"requests"`
	// Errors is the number of requests that got no HTTP answer.
	Errors int64 `json:"errors"`
	// Retries is the number of attempts beyond the first, over all requests.
	Retries int64 `json:"retries"`
	// Cancelled is the number of jobs cancelled (by an interrupt) before
	// they ended; they are in no other count.
	Cancelled int64 `json:"cancelled"`
	// TransportErrors splits Errors by cause.
	TransportErrors TransportErrors `json:"transport_errors"`
	// FirstSentAt is when the first request was sent (RFC 3339, UTC), null
	// when there are no requests.
	FirstSentAt *time.Time `json:"first_sent_at"`
	// LastDoneAt is when the last request ended, null when there are none.
	LastDoneAt *time.Time `json:"last_done_at"`
	// RanForS is LastDoneAt - FirstSentAt in seconds, 0 when there are no
	// requests.
	RanForS float64 `json:"ran_for_s"`
	// RatePerS is Requests / RanForS, null when RanForS is 0.
	RatePerS *float64 `json:"rate_per_s"`
	// ResponseTime runs from the intended send time (the send time without
	// a schedule) to the end of the last attempt; it includes the wait for
	// a free worker (coordinated omission). Null when there are no requests.
	ResponseTime *DistSummary `json:"response_time"`
	// ServiceTime runs from the actual send of the first attempt to the end
	// of the last one.
	ServiceTime *DistSummary `json:"service_time"`
	// ScheduleLag is the send time minus the intended send time; null
	// without a schedule (never 0) or without requests.
	ScheduleLag *DistSummary `json:"schedule_lag"`
}

// TransportErrors counts requests without an HTTP answer by cause.
type TransportErrors struct {
	// Timeout counts attempts that ran out of time.
	Timeout int64 `json:"timeout"`
	// Refused counts connections refused.
	Refused int64 `json:"refused"`
	// Reset counts connections reset or closed early.
	Reset int64 `json:"reset"`
	// Other counts any other failure.
	Other int64 `json:"other"`
}
