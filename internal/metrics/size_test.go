package metrics

import "unsafe"

// Memory accounting for the tests: what grows with requests shows here.

// histograms returns how many histograms m holds in memory, children and
// timeline included.
func (m *Metrics) histograms() int {
	n := 0
	for _, d := range []*dist{&m.response, &m.service, &m.lag} {
		if d.h != nil {
			n++
		}
	}
	for _, c := range m.byStatus {
		n += c.histograms()
	}
	if m.timeline != nil {
		n += m.timeline.histograms()
	}
	return n
}

// size estimates the bytes m holds: histograms, encoded points, points.
func (m *Metrics) size() int {
	n := int(unsafe.Sizeof(*m))
	for _, d := range []*dist{&m.response, &m.service, &m.lag} {
		if d.h != nil {
			n += d.h.ByteSize()
		}
	}
	for _, c := range m.byStatus {
		n += c.size()
	}
	if t := m.timeline; t != nil {
		n += cap(t.points) * int(unsafe.Sizeof(point{}))
		for _, h := range t.spare {
			n += h.ByteSize()
		}
		for i := range t.points {
			if p := &t.points[i]; p.hist != nil {
				n += p.hist.ByteSize()
			} else {
				n += len(p.enc)
			}
		}
	}
	return n
}

// histograms returns how many histograms the timeline holds in memory.
func (t *timeline) histograms() int {
	n := len(t.spare)
	for i := range t.points {
		if t.points[i].hist != nil {
			n++
		}
	}
	return n
}
