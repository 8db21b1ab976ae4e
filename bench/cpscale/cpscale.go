// Package cpscale measures hopguard's control plane at mesh scale: a
// generated mesh (services × routes) is compiled and rendered to snapshots
// (timed, with the heap it takes), then N lightweight ADS clients connect
// as distinct nodes and a configuration change is timed from the moment it
// is handed to the server until each client ACKs the new version. The same
// clients, in the same run, measure a bare go-control-plane server (a
// snapshot cache and its server) handed the same pre-built snapshots and
// the same change, which gives the ratio.
//
// What "the change" covers differs by design: hopguard's server receives
// the compiled mesh and renders and versions every connected service
// itself (what it does on a reload); the bare server receives snapshots
// already rendered. The ratio therefore includes hopguard's rendering. A
// third run, hopguard-prerendered, gives hopguard's server the same
// pre-rendered resources through its Render option, which separates the
// translator's cost from the server's.
package cpscale

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/hopguard/hopguard/bench/loadgen"
	"github.com/hopguard/hopguard/bench/result"
	"github.com/hopguard/hopguard/bench/scenario"
	"github.com/hopguard/hopguard/controlplane/ir"
)

// Options configure Run.
type Options struct {
	// Quick selects the scenario's quick size.
	Quick bool
	// TempDir is where the generated mesh is written (required); Run
	// removes what it writes.
	TempDir string
	// Progress receives one line per phase (nil: none).
	Progress func(format string, args ...any)
}

// Extension timeouts before and after the change.
const (
	timeoutBefore = 200 * time.Millisecond
	timeoutAfter  = 300 * time.Millisecond
)

// Run runs the scenario.
func Run(ctx context.Context, sc *scenario.CPScale, opts Options) (*result.CPScale, error) {
	progress := opts.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	size := sc.Size(opts.Quick)
	dir, err := os.MkdirTemp(opts.TempDir, "cpscale-")
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := writeMesh(dir, size.Services, size.RoutesPerService, sc.DependsOn, timeoutBefore); err != nil {
		return nil, err
	}
	res := &result.CPScale{Services: size.Services, RoutesPerService: size.RoutesPerService}

	progress("cpscale: compiling %d services × %d routes", size.Services, size.RoutesPerService)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	m1, err := compile(dir)
	if err != nil {
		return nil, err
	}
	res.CompileSeconds = time.Since(start).Seconds()
	start = time.Now()
	snaps1, err := buildSnapshots(m1)
	if err != nil {
		return nil, err
	}
	res.SnapshotsSeconds = time.Since(start).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.HeapInUseBefore, res.HeapInUseAfter = before.HeapInuse, after.HeapInuse
	res.AllocBytes = after.TotalAlloc - before.TotalAlloc
	res.Resources = snaps1.resources
	runtime.KeepAlive(m1)
	runtime.KeepAlive(snaps1)

	// The changed configuration, compiled and pre-built before any timing.
	if err := writeMeshConfig(dir, timeoutAfter); err != nil {
		return nil, err
	}
	m2, snaps2, err := compileAndBuild(dir)
	if err != nil {
		return nil, err
	}
	for svc, v := range snaps2.versions {
		if snaps1.versions[svc] == v {
			return nil, fmt.Errorf("cpscale: the change leaves service %s at version %s", svc, v)
		}
	}
	// Then a change to one service's route budgets: it changes that
	// service's nodes and its callers', no others.
	if err := writeService(dir, 0, size.Services, size.RoutesPerService, sc.DependsOn, oneServiceDeadline); err != nil {
		return nil, err
	}
	m3, snaps3, err := compileAndBuild(dir)
	if err != nil {
		return nil, err
	}
	changed := 0
	for svc, v := range snaps3.versions {
		if snaps2.versions[svc] != v {
			changed++
		}
	}
	if snaps3.versions[serviceName(0)] == snaps2.versions[serviceName(0)] || changed >= size.Services {
		return nil, fmt.Errorf("cpscale: the one-service change touched %d of %d services", changed, size.Services)
	}

	for _, n := range size.Clients {
		for _, name := range []string{result.ServerBare, result.ServerHopguardPrerendered, result.ServerHopguard} {
			progress("cpscale: %s server, %d clients", name, n)
			run, err := runOne(ctx, name, n, size.Services, sc.AckTimeout.D(), []*ir.Mesh{m1, m2, m3}, []*snapshots{snaps1, snaps2, snaps3})
			if err != nil {
				return nil, err
			}
			progress("cpscale: %s server, %d clients: change → all ACKs %.0f ms (p50 %.1f ms, p99 %.1f ms)",
				name, n, run.AllAckedSeconds*1000, run.ChangeToAck.P50/1000, run.ChangeToAck.P99/1000)
			res.Runs = append(res.Runs, run)
		}
	}
	res.Derive()
	return res, nil
}

// compileAndBuild compiles dir and pre-builds every service's snapshot.
func compileAndBuild(dir string) (*ir.Mesh, *snapshots, error) {
	m, err := compile(dir)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := buildSnapshots(m)
	if err != nil {
		return nil, nil, err
	}
	return m, snaps, nil
}

// runOne starts server name with configuration 1, connects n clients,
// waits for their ACKs, applies configuration 2 (mesh-wide) and times the
// ACKs, then applies configuration 3 (one service) and times the ACKs of
// the clients it changed.
func runOne(ctx context.Context, name string, n, services int, timeout time.Duration, meshes []*ir.Mesh, snaps []*snapshots) (run result.CPScaleRun, err error) {
	m1, m2, m3 := meshes[0], meshes[1], meshes[2]
	s1, s2, s3 := snaps[0], snaps[1], snaps[2]
	run = result.CPScaleRun{Server: name, Clients: n}
	var srv xdsServer
	switch name {
	case result.ServerHopguard:
		srv, err = startHopguard(m1)
	case result.ServerHopguardPrerendered:
		srv, err = startHopguard(m1, s1, s2, s3)
	default:
		srv, err = startBare()
	}
	if err != nil {
		return run, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()

	start := time.Now()
	f, err := startFleet(srv.addr(), n, services)
	if err != nil {
		return run, err
	}
	defer func() { err = errors.Join(err, f.close()) }()
	if err := srv.set(ctx, m1, s1, f.nodes); err != nil {
		return run, err
	}
	if _, err := f.await(ctx, s1.versions, timeout); err != nil {
		return run, fmt.Errorf("cpscale: %s: first version: %w", name, err)
	}
	run.ConnectSeconds = time.Since(start).Seconds()

	// Each change starts from a collected heap, so that neither server
	// pays for the garbage of the phase before it.
	runtime.GC()
	change := time.Now()
	if err := srv.set(ctx, m2, s2, f.nodes); err != nil {
		return run, err
	}
	acked, err := f.await(ctx, s2.versions, timeout)
	if err != nil {
		return run, fmt.Errorf("cpscale: %s: changed version: %w", name, err)
	}
	h := loadgen.NewHistogram()
	var last time.Time
	for _, at := range acked {
		loadgen.Record(h, at.Sub(change))
		if at.After(last) {
			last = at
		}
	}
	run.Acked = len(acked)
	run.ChangeToAck = loadgen.Summary(h)
	run.AllAckedSeconds = last.Sub(change).Seconds()

	runtime.GC()
	change = time.Now()
	if err := srv.set(ctx, m3, s3, f.nodes); err != nil {
		return run, err
	}
	acked, err = f.awaitChanged(ctx, s3.versions, s2.versions, timeout)
	if err != nil {
		return run, fmt.Errorf("cpscale: %s: one-service change: %w", name, err)
	}
	h = loadgen.NewHistogram()
	for _, at := range acked {
		if !at.IsZero() {
			loadgen.Record(h, at.Sub(change))
			run.OneServiceClients++
		}
	}
	run.OneServiceToAck = loadgen.Summary(h)
	return run, nil
}
