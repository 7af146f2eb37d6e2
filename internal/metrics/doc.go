// Package metrics aggregates the outcomes of HTTP jobs into mergeable
// figures: counts, errors by class, retries, cancellations, achieved rate,
// latency distributions, per-status breakdowns and a timeline. It knows
// nothing of what the jobs are (download, upload, ...).
//
// The model is vegeta's Metrics: workers only measure and send a Sample;
// one collector goroutine owns a Metrics and calls Add, which is cheap
// (O(1), no allocation once a status and an interval have been seen); the
// statistics are computed once, by Summary. Memory does not grow with the
// number of requests, only with the number of distinct statuses and, up to
// 600 timeline points, with the duration.
//
// A distribution is an HdrHistogram (1 µs to 1 h, 3 significant digits)
// with its exact count, sum, min and max kept beside it, so that two
// Metrics merge exactly (shards, baselines) and percentiles of a merge are
// those of the whole. Summary writes every histogram in the standard base64
// V2 compressed encoding that other HdrHistogram tools read, and
// FromSummary reads a Summary back into Metrics.
//
// Rate-driven steps pass the time the schedule meant a job to start
// (Sample.Intended). Response time is then measured from that time, not
// from the actual send, so that a slow server that holds up the senders
// cannot hide its delay: the coordinated omission that wrk2 and
// HdrHistogram describe. Service time runs from the actual send, and
// schedule lag is the difference. Without a schedule the response time is
// the service time and the schedule lag is null (absent, not 0).
//
// The timeline counts requests per fixed interval of their Done time,
// starting at the first Done time truncated to a whole second (UTC). It
// begins at 1 s intervals and doubles the interval, merging adjacent
// pairs, whenever one more than 600 points would be needed, so its origin
// never moves except to the left, by whole intervals, for a sample done
// before it. The newest two intervals keep live histograms (2 significant
// digits); older ones are kept in encoded form.
//
// ValueDist is the same machinery for non-latency values (sizes, counts,
// Tecken's Debug-Time) that step kinds need mergeably.
package metrics
