package graph

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Profile accumulates the wall time of each operation of a plan over runs
// of RunProfiled: where a step spends its time, by kernel and shape.
type Profile struct {
	ops  map[string]*ProfileEntry
	runs int
}

// ProfileEntry is the time of one operation, or of one kind of operation
// (ByKind), summed over the profiled runs.
type ProfileEntry struct {
	Op    string        // the op's String(), shapes included; the kind alone in ByKind
	Calls int           // calls over all runs
	Time  time.Duration // wall time over all runs
}

// NewProfile returns an empty Profile.
func NewProfile() *Profile { return &Profile{ops: map[string]*ProfileEntry{}} }

// Add records one call of op that took d; code outside plans (an optimizer
// step, a download) adds its own entries.
func (p *Profile) Add(op string, d time.Duration) {
	e, ok := p.ops[op]
	if !ok {
		e = &ProfileEntry{Op: op}
		p.ops[op] = e
	}
	e.Calls++
	e.Time += d
}

// Runs is the number of RunProfiled calls recorded.
func (p *Profile) Runs() int { return p.runs }

// Total is the time of all entries.
func (p *Profile) Total() time.Duration {
	var t time.Duration
	for _, e := range p.ops {
		t += e.Time
	}
	return t
}

// Entries returns every operation, the most expensive first.
func (p *Profile) Entries() []ProfileEntry {
	out := make([]ProfileEntry, 0, len(p.ops))
	for _, e := range p.ops {
		out = append(out, *e)
	}
	return sortEntries(out)
}

// ByKind returns the entries summed per kind of operation — the op's name
// without its shape, "Conv2DForward" for "Conv2DForward{N:…}" — the most
// expensive first.
func (p *Profile) ByKind() []ProfileEntry {
	kinds := map[string]*ProfileEntry{}
	for _, e := range p.ops {
		kind, _, _ := strings.Cut(e.Op, "{")
		k, ok := kinds[kind]
		if !ok {
			k = &ProfileEntry{Op: kind}
			kinds[kind] = k
		}
		k.Calls += e.Calls
		k.Time += e.Time
	}
	out := make([]ProfileEntry, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, *k)
	}
	return sortEntries(out)
}

// sortEntries orders by time, descending, then by name, so that equal
// profiles print alike.
func sortEntries(e []ProfileEntry) []ProfileEntry {
	slices.SortFunc(e, func(a, b ProfileEntry) int {
		if c := cmp.Compare(b.Time, a.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Op, b.Op)
	})
	return e
}

// RunProfiled is Run with the backend synchronised after every step, whose
// wall time goes into prof under the step's op. The waits make it slower
// than Run — on a GPU each kernel's launch is no longer hidden behind the
// previous one — so read the shares, not the sum, against Run's step time.
func (p *Plan) RunProfiled(prof *Profile) error {
	if err := p.be.Sync(); err != nil {
		return err
	}
	for i := range p.steps {
		s := &p.steps[i]
		start := time.Now()
		var err error
		if s.run != nil {
			err = s.run()
		} else {
			err = s.k.Exec(p.be, s.in, s.out)
		}
		if err == nil {
			err = p.be.Sync()
		}
		if err != nil {
			return err
		}
		prof.Add(s.name(), time.Since(start))
	}
	prof.runs++
	return nil
}
