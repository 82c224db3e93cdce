package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo says which build is running: in `bootstrapd version` and in
// bootstrapd_build_info, so that a dashboard can tell which release each appliance runs.
type buildInfo struct {
	Version   string // -X main.version, else the module version, else "dev"
	GoVersion string
	Revision  string // VCS commit, "-modified" when built from a dirty tree; "unknown" without VCS data
}

func (b buildInfo) String() string {
	return fmt.Sprintf("%s (revision %s, %s)", b.Version, b.Revision, b.GoVersion)
}

// currentBuild is the running binary's buildInfo.
func currentBuild() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return resolveBuild(version, info)
}

// resolveBuild prefers the version the release build sets (Makefile, build-deb.sh) and falls
// back to what the go command records, so that `go install …@v1.2.3` reports v1.2.3 and a
// `go build` in a checkout its pseudo-version and commit instead of a bare "dev".
func resolveBuild(ldflagsVersion string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: ldflagsVersion, GoVersion: runtime.Version(), Revision: "unknown"}
	if info == nil {
		return b
	}
	if info.GoVersion != "" {
		b.GoVersion = info.GoVersion
	}
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	// The suffix prometheus/common's version package uses, so that dashboards built for
	// other exporters read it the same way.
	if modified && b.Revision != "unknown" {
		b.Revision += "-modified"
	}
	// "(devel)" is what the go command records when it knows no version.
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	return b
}

// newBuildInfo registers bootstrapd_build_info on reg and returns what it reports. It
// panics, like reg.MustRegister, if reg already has the metric.
func newBuildInfo(reg prometheus.Registerer) buildInfo {
	b := currentBuild()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bootstrapd_build_info",
		Help: "Always 1; the labels say which build of bootstrapd is running.",
		ConstLabels: prometheus.Labels{
			"version":   b.Version,
			"goversion": b.GoVersion,
			"revision":  b.Revision,
		},
	}, func() float64 { return 1 }))
	return b
}
