// Package audit is the control plane's hash-chained audit log: one JSON
// line per accepted change, refused change and manual override, each
// carrying the SHA-256 of the previous record, so editing, removing,
// reordering or truncating records is detected by Verify.
//
// Beside the log, in objects/ of the log's directory, the source files of every accepted
// configuration are kept by content hash, so an earlier generation can be
// rebuilt (hopguard pin).
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hopguard/hopguard/policy"
)

// Record kinds.
const (
	KindChange   = "change"
	KindRefused  = "refused"
	KindPin      = "pin"
	KindUnpin    = "unpin"
	KindFreeze   = "freeze"
	KindUnfreeze = "unfreeze"
)

// genesis is the Prev of the first record.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Source is one configuration file of a change.
type Source struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Summary lists route ids by what happened to them.
type Summary struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// Record is one audit log entry.
type Record struct {
	// Seq numbers records from 1.
	Seq uint64 `json:"seq"`
	// Time is when it happened (UTC).
	Time time.Time `json:"time"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Sources are the configuration files involved, with their hashes.
	Sources []Source `json:"sources"`
	// OldPolicyHash and NewPolicyHash are the distributed policy before and after.
	OldPolicyHash string `json:"old_policy_hash"`
	NewPolicyHash string `json:"new_policy_hash"`
	// Generation is the bundle generation distributed (0 when none was).
	Generation uint64 `json:"generation"`
	// OldConfigVersion and NewConfigVersion are the version of the
	// configuration served (as /config shows it) before and after. It moves
	// with anything served over xDS, policies or not: endpoints, ports,
	// dependencies, ext_proc settings, change windows. Records written
	// before it was recorded have neither.
	OldConfigVersion string `json:"old_config_version,omitempty"`
	NewConfigVersion string `json:"new_config_version,omitempty"`
	// PinnedTo is the generation a pin record serves again (pin records only).
	PinnedTo uint64 `json:"pinned_to,omitempty"`
	// Summary lists the routes added, removed and changed.
	Summary Summary `json:"summary"`
	// InWindow is true when the change fell inside a declared change window.
	InWindow bool `json:"in_window"`
	// Errors are why a refused change was refused.
	Errors []string `json:"errors"`
	// Detail is free text (the reason given for an override).
	Detail string `json:"detail"`
	// Prev is the Hash of the previous record (all zeros for the first).
	Prev string `json:"prev"`
	// Hash is the SHA-256 of this record's canonical encoding without Hash.
	Hash string `json:"hash"`
}

// hash computes r's Hash.
func (r Record) hash() (string, error) {
	r.Hash = ""
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("audit: encode: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// VerifyError says where a chain breaks.
type VerifyError struct {
	// Line is the 1-based line of the first bad record.
	Line int
	// Reason says what is wrong with it.
	Reason string
}

// Error returns "audit: line N: reason".
func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit: line %d: %s", e.Line, e.Reason)
}

// Verify reads a log and checks every record's hash and link; it returns
// the number of records, or a *VerifyError at the first bad line.
func Verify(r io.Reader) (int, error) {
	recs, err := read(r)
	return len(recs), err
}

func read(r io.Reader) ([]Record, error) {
	br := bufio.NewReader(r)
	var recs []Record
	prev := genesis
	for line := 1; ; line++ {
		raw, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(raw) > 0 {
				return recs, &VerifyError{Line: line, Reason: "truncated record (no newline at the end)"}
			}
			return recs, nil
		}
		if err != nil {
			return recs, fmt.Errorf("audit: read: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var rec Record
		if err := dec.Decode(&rec); err != nil {
			return recs, &VerifyError{Line: line, Reason: "not a record: " + err.Error()}
		}
		want, err := rec.hash()
		if err != nil {
			return recs, err
		}
		canon, _ := json.Marshal(rec)
		switch {
		case rec.Hash != want:
			return recs, &VerifyError{Line: line, Reason: "hash does not match the record (edited)"}
		case !bytes.Equal(bytes.TrimSuffix(raw, []byte("\n")), canon):
			return recs, &VerifyError{Line: line, Reason: "record is not in canonical form (edited)"}
		case rec.Prev != prev:
			return recs, &VerifyError{Line: line, Reason: "does not follow the previous record (removed, reordered or inserted)"}
		case rec.Seq != uint64(line):
			return recs, &VerifyError{Line: line, Reason: fmt.Sprintf("sequence %d at line %d", rec.Seq, line)}
		}
		prev = rec.Hash
		recs = append(recs, rec)
	}
}

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	path    string
	objects string

	mu   sync.Mutex
	f    *os.File
	recs []Record
}

// Open opens the log at path, creating it (and its directory) when
// missing. It verifies the existing chain first and refuses to append to a
// broken one.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	recs, err := read(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("audit: %s is not intact, refusing to append (run hopguard audit verify): %w", path, err)
	}
	return &Log{path: path, objects: filepath.Join(filepath.Dir(path), "objects"), f: f, recs: recs}, nil
}

// Append completes r (Seq, Prev, Hash; Time when zero), writes it and
// syncs it to disk, and returns it.
func (l *Log) Append(r Record) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return Record{}, errors.New("audit: log closed")
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC().Round(0)
	r.Seq = uint64(len(l.recs)) + 1
	r.Prev = genesis
	if n := len(l.recs); n > 0 {
		r.Prev = l.recs[n-1].Hash
	}
	h, err := r.hash()
	if err != nil {
		return Record{}, err
	}
	r.Hash = h
	b, err := json.Marshal(r)
	if err != nil {
		return Record{}, fmt.Errorf("audit: encode: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return Record{}, fmt.Errorf("audit: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return Record{}, fmt.Errorf("audit: sync: %w", err)
	}
	l.recs = append(l.recs, r)
	return r, nil
}

// Records returns a copy of every record.
func (l *Log) Records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// Last returns the last record that distributed a generation.
func (l *Log) Last() (Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.recs) - 1; i >= 0; i-- {
		if l.recs[i].Generation > 0 {
			return l.recs[i], true
		}
	}
	return Record{}, false
}

// LastOf returns the last record of kind.
func (l *Log) LastOf(kind string) (Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.recs) - 1; i >= 0; i-- {
		if l.recs[i].Kind == kind {
			return l.recs[i], true
		}
	}
	return Record{}, false
}

// Overrides are the manual overrides in force at the end of a log.
type Overrides struct {
	// Frozen is true when the last freeze record was not undone.
	Frozen bool
	// PinnedTo is the generation pinned by the last pin record not undone
	// (0: not pinned).
	PinnedTo uint64
}

// Overrides replays the log's pin, unpin, freeze and unfreeze records.
// Pin records written before PinnedTo was recorded are read from their
// Detail ("pinned to generation N: ...").
func (l *Log) Overrides() Overrides {
	l.mu.Lock()
	defer l.mu.Unlock()
	var o Overrides
	for _, r := range l.recs {
		switch r.Kind {
		case KindFreeze:
			o.Frozen = true
		case KindUnfreeze:
			o.Frozen = false
		case KindPin:
			o.PinnedTo = r.PinnedTo
			if o.PinnedTo == 0 {
				var gen uint64
				if _, err := fmt.Sscanf(r.Detail, "pinned to generation %d:", &gen); err == nil {
					o.PinnedTo = gen
				}
			}
		case KindUnpin:
			o.PinnedTo = 0
		}
	}
	return o
}

// Close closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// HashBytes is the hex SHA-256 of b, as Source.SHA256 records it.
func HashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PutSources stores files (path → content) in the object store, once per
// content, and returns their sources sorted by path.
func (l *Log) PutSources(files map[string][]byte) ([]Source, error) {
	if err := os.MkdirAll(l.objects, 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	out := make([]Source, 0, len(files))
	for p, b := range files {
		h := HashBytes(b)
		obj := filepath.Join(l.objects, h)
		if _, err := os.Stat(obj); err != nil {
			tmp := obj + ".tmp"
			if err := os.WriteFile(tmp, b, 0o640); err != nil {
				return nil, fmt.Errorf("audit: store source: %w", err)
			}
			if err := os.Rename(tmp, obj); err != nil {
				return nil, fmt.Errorf("audit: store source: %w", err)
			}
		}
		out = append(out, Source{Path: p, SHA256: h})
	}
	slices.SortFunc(out, func(a, b Source) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// ErrSourceModified is returned by Sources for a source file whose
// content no longer has the hash its record names.
var ErrSourceModified = errors.New("audit: source modified in the object store")

// ErrNoGeneration is returned by Sources for a generation that no record
// distributed.
var ErrNoGeneration = errors.New("audit: no record distributed that generation")

// Sources returns the files of the record that distributed generation gen,
// checking each against its recorded hash.
func (l *Log) Sources(gen uint64) (map[string][]byte, error) {
	l.mu.Lock()
	var rec *Record
	for i := range l.recs {
		if l.recs[i].Generation == gen && l.recs[i].Kind != KindRefused {
			r := l.recs[i]
			rec = &r
		}
	}
	l.mu.Unlock()
	if rec == nil {
		return nil, fmt.Errorf("%w %d", ErrNoGeneration, gen)
	}
	out := make(map[string][]byte, len(rec.Sources))
	for _, s := range rec.Sources {
		b, err := os.ReadFile(filepath.Join(l.objects, s.SHA256))
		if err != nil {
			return nil, fmt.Errorf("audit: source %s of generation %d: %w", s.Path, gen, err)
		}
		if HashBytes(b) != s.SHA256 {
			return nil, fmt.Errorf("%w: source %s of generation %d", ErrSourceModified, s.Path, gen)
		}
		out[s.Path] = b
	}
	return out, nil
}

// Summarize lists the route ids added, removed and changed (by policy
// digest) from old to new; old may be nil.
func Summarize(old, new *policy.Bundle) Summary {
	s := Summary{Added: []string{}, Removed: []string{}, Changed: []string{}}
	before := map[string]string{}
	if old != nil {
		for i := range old.Routes {
			before[old.Routes[i].ID] = old.Routes[i].Digest()
		}
	}
	seen := map[string]bool{}
	if new != nil {
		for i := range new.Routes {
			r := &new.Routes[i]
			seen[r.ID] = true
			d, ok := before[r.ID]
			switch {
			case !ok:
				s.Added = append(s.Added, r.ID)
			case d != r.Digest():
				s.Changed = append(s.Changed, r.ID)
			}
		}
	}
	for id := range before {
		if !seen[id] {
			s.Removed = append(s.Removed, id)
		}
	}
	slices.Sort(s.Added)
	slices.Sort(s.Removed)
	slices.Sort(s.Changed)
	return s
}
