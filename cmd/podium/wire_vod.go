package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"podium/sfu"
	"podium/transcode"
	"podium/vod"
)

// vodFlags is the vod part's configuration (filled by registerVodFlags).
var vodFlags struct {
	transcode   bool
	workers     int
	poll        time.Duration
	ffmpeg      string
	ffprobe     string
	ladder      string
	preset      string
	maxAttempts int
	stall       time.Duration
	jobTimeout  time.Duration
	rescueAfter time.Duration
	playback    string
	urlSecret   string
	urlTTL      time.Duration
	retention   daysFlag
}

// registerVodFlags adds the vod part's flags.
func registerVodFlags(fs *flag.FlagSet) {
	f := &vodFlags
	fs.BoolVar(&f.transcode, "vod-transcode", true, "run transcode jobs on this node (false: serve the catalog only)")
	fs.IntVar(&f.workers, "vod-workers", transcode.DefaultWorkers(), "transcode jobs run at once (ffmpeg uses every core; default one per 4 cores)")
	fs.DurationVar(&f.poll, "vod-poll", 10*time.Second, "how often storage is scanned for completed recordings")
	fs.StringVar(&f.ffmpeg, "vod-ffmpeg", "ffmpeg", "ffmpeg program")
	fs.StringVar(&f.ffprobe, "vod-ffprobe", "ffprobe", "ffprobe program")
	fs.StringVar(&f.ladder, "vod-ladder", "1080:4000,720:2200,360:600", "HLS video ladder as height:kbps,... (rungs taller than the recording are skipped; an audio-only rendition is always added)")
	fs.StringVar(&f.preset, "vod-preset", "veryfast", "x264 preset")
	fs.IntVar(&f.maxAttempts, "vod-max-attempts", 3, "attempts before a failing transcode job is given up")
	fs.DurationVar(&f.stall, "vod-stall-timeout", 2*time.Minute, "kill an ffmpeg that reports no progress for this long")
	fs.DurationVar(&f.jobTimeout, "vod-job-timeout", 2*time.Hour, "the longest one attempt of a transcode job may run (a failed attempt after that)")
	fs.DurationVar(&f.rescueAfter, "vod-job-rescue-after", transcode.DefaultRescueAfter, "queue again (as a failed attempt) a job whose node wrote no heartbeat for this long: how soon a killed worker's job runs elsewhere (heartbeats every quarter of it)")
	fs.StringVar(&f.playback, "vod-playback", vod.PlaybackPodium, "media delivery: podium (all bytes through podium) or signed (segments and downloads from presigned storage URLs)")
	fs.StringVar(&f.urlSecret, "vod-url-secret", "", "HMAC secret of signed media URLs (default: random per process; set it when several nodes serve one catalog)")
	fs.Var(&f.retention, "vod-retention", "delete recorded lessons (with their replays and clips) this long after they started, e.g. 365d; 0 keeps them (each deletion is audited)")
	fs.DurationVar(&f.urlTTL, "vod-url-ttl", 10*time.Minute, "lifetime of signed media URLs (URLs in a playlist also live as long as it plays)")
}

func parseLadder(s string) ([]transcode.Rung, error) {
	var out []transcode.Rung
	for _, part := range strings.Split(s, ",") {
		h, k, ok := strings.Cut(strings.TrimSpace(part), ":")
		height, err1 := strconv.Atoi(h)
		kbps, err2 := strconv.Atoi(k)
		if !ok || err1 != nil || err2 != nil || height < 144 || height > 2160 || height%2 != 0 || kbps < 100 {
			return nil, fmt.Errorf("vod-ladder: bad rung %q (want height:kbps, e.g. 720:2200)", part)
		}
		out = append(out, transcode.Rung{Name: fmt.Sprintf("%dp", height), Height: height, VideoKbps: kbps})
	}
	return out, nil
}

// wireVod builds the transcode queue and the VOD catalog on a.store.
func wireVod(a *app) error {
	f := vodFlags
	if a.store == nil {
		a.log.Warn("vod: no storage configured; replay catalog disabled")
		return nil
	}
	q, err := newTranscodeQueue(a)
	if err != nil {
		return err
	}
	var clips vod.ClipSubmitter = q
	svc, err := vod.New(a.store, a.db, clips, vod.Config{URLSecret: f.urlSecret, URLTTL: f.urlTTL, Playback: f.playback,
		Audit: a.audit, Retention: time.Duration(f.retention), TranscodeFailure: q.LessonFailure}, a.log)
	if err != nil {
		return err
	}
	// The catalog follows storage: lessons in progress every few seconds,
	// lessons recorded elsewhere (another node, an older version) found by
	// a listing of lesson names every minute.
	if a.sfu != nil && a.sfu.Rooms != nil {
		a.sfu.Rooms.OnRoomCreated(func(room *sfu.Room) { svc.Expect(room.ID()) })
	}
	sctx, stopSync := context.WithCancel(context.Background())
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		svc.RunSync(sctx, 5*time.Second, time.Minute)
	}()
	a.onClose(func(context.Context) error {
		stopSync()
		<-syncDone
		return nil
	})

	svc.Mount(a.routes)
	// Retention passes are jobs of the queue: one node of all runs each.
	q.SetRetainer(svc)
	transcode.Handlers{Q: q}.Mount(a.routes)
	runTranscodeQueue(a, q)
	return nil
}

// daysFlag is a duration that also takes whole days ("365d"), for
// retention periods.
type daysFlag time.Duration

func (d *daysFlag) String() string {
	if *d > 0 && time.Duration(*d)%(24*time.Hour) == 0 {
		return strconv.Itoa(int(time.Duration(*d)/(24*time.Hour))) + "d"
	}
	return time.Duration(*d).String()
}

func (d *daysFlag) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("%q is not a number of days such as 365d", s)
		}
		*d = daysFlag(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration such as 365d or 720h", s)
	}
	*d = daysFlag(v)
	return nil
}
