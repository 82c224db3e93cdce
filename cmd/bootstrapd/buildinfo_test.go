package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolveBuild(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name    string
		ldflags string
		info    *debug.BuildInfo
		want    buildInfo
	}{
		{"release build", "v0.3.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("abc123", "false")},
			buildInfo{"v0.3.0", "go1.26.8", "abc123"}},
		{"go install at a tag", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.0"}},
			buildInfo{"v0.3.0", "go1.26.8", "unknown"}},
		{"go build in a dirty checkout", "dev", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.0.0-20260901064844-abc123abc123+dirty"}, Settings: vcs("abc123abc123", "true")},
			buildInfo{"v0.0.0-20260901064844-abc123abc123+dirty", "go1.26.8", "abc123abc123-modified"}},
		{"no version anywhere", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			buildInfo{"dev", "go1.26.8", "unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolveBuild(tc.ldflags, tc.info); got != tc.want {
				t.Errorf("resolveBuild = %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := resolveBuild("dev", nil); got.Version != "dev" || got.Revision != "unknown" || got.GoVersion == "" {
		t.Errorf("without build info: %+v", got)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b := newBuildInfo(reg)
	want := `
# HELP bootstrapd_build_info Always 1; the labels say which build of bootstrapd is running.
# TYPE bootstrapd_build_info gauge
bootstrapd_build_info{goversion="` + b.GoVersion + `",revision="` + b.Revision + `",version="` + b.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "bootstrapd "+b.String()+"\n" {
		t.Errorf("bootstrapd version printed %q", got)
	}
}
