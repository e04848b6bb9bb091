package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"podium/sfu"
	"podium/sfu/ingest"
	"podium/signaling/auth"
)

// ingestFlags is the ingest part's configuration, filled by registerIngestFlags.
var ingestFlags struct {
	ffmpeg     string
	retryMin   time.Duration
	retryMax   time.Duration
	timeout    time.Duration
	maxSources int
	allowCIDR  cidrListFlag
}

// cidrListFlag is --ingest-allow-cidr: repeatable, comma lists accepted,
// each entry checked when set; the first value given replaces the default.
type cidrListFlag struct {
	list []string
	set  bool
}

func (f *cidrListFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.list, ",")
}

func (f *cidrListFlag) Set(v string) error {
	if !f.set {
		f.list, f.set = nil, true
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, err := ingest.ParseAllowList([]string{p}); err != nil {
			return err
		}
		f.list = append(f.list, p)
	}
	return nil
}

// registerIngestFlags adds the ingest part's flags.
func registerIngestFlags(fs *flag.FlagSet) {
	fs.StringVar(&ingestFlags.ffmpeg, "ingest-ffmpeg", "ffmpeg", "ffmpeg program used to transcode H.265/MJPEG video and AAC/G.711 audio from RTSP sources")
	fs.DurationVar(&ingestFlags.retryMin, "ingest-retry-min", time.Second, "first wait before reconnecting to a failed RTSP source (doubles after each failure)")
	fs.DurationVar(&ingestFlags.retryMax, "ingest-retry-max", 30*time.Second, "longest wait between reconnects to an RTSP source")
	fs.DurationVar(&ingestFlags.timeout, "ingest-timeout", 10*time.Second, "how long an RTSP source may stay silent before it is reconnected")
	fs.IntVar(&ingestFlags.maxSources, "ingest-max-sources", 256, "most RTSP sources registered on this node")
	ingestFlags.allowCIDR = cidrListFlag{list: append([]string(nil), ingest.DefaultAllowCIDRs...)}
	fs.Var(&ingestFlags.allowCIDR, "ingest-allow-cidr", "networks RTSP sources may connect to (CIDR or address; repeatable or comma-separated; replaces the default private ranges and loopback). Link-local (169.254/16, fe80::/10: cloud metadata), unspecified, multicast and broadcast addresses are refused whatever this says")
}

// wireIngest builds the RTSP ingest manager: the admin source API under
// /api/lessons/{id}/sources, its metrics, and its shutdown.
func wireIngest(a *app) error {
	allow, err := ingest.ParseAllowList(ingestFlags.allowCIDR.list)
	if err != nil {
		return fmt.Errorf("--ingest-allow-cidr: %w", err)
	}
	m, err := ingest.New(ingest.Config{
		Rooms:       a.sfu.Rooms,
		Log:         a.log,
		FFmpegPath:  ingestFlags.ffmpeg,
		Backoff:     ingest.Backoff{Min: ingestFlags.retryMin, Max: ingestFlags.retryMax},
		ReadTimeout: ingestFlags.timeout,
		MaxSources:  ingestFlags.maxSources,
		Allow:       allow,
	})
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if err := a.reg.Register(m.Collector()); err != nil {
		return fmt.Errorf("ingest metrics: %w", err)
	}
	// Sources hold camera credentials: a lesson's admin manages its own.
	h := m.Handler()
	for _, pattern := range ingest.Routes {
		a.routes.Handle(pattern, auth.OfLesson("id", sfu.RoleAdmin), h)
	}
	a.onClose(func(context.Context) error {
		m.Close()
		return nil
	})
	return nil
}
