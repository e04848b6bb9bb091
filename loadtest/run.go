// Package loadtest owns `podium loadtest`: synthetic teachers that publish
// real encoded media (VP8 simulcast or H.264, plus Opus, from files ffmpeg
// makes once) and synthetic classrooms that subscribe over Podium's
// websocket protocol or plain WHEP, through an emulated rural link, and
// measure what users feel: join time to first frame, received bitrate and
// layer, loss after NACK, freezes, end-to-end delay; plus the server's CPU
// and memory.
//
// It speaks to a server only over the network, like any client: it must not
// import the sfu or signaling packages' internals (it uses signaling/auth
// only to mint tokens), so it can be pointed at any WHIP/WHEP server.
package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
	"podium/signaling/auth"
)

// Config is one load test run.
type Config struct {
	// Server is the base URL of the server (http://127.0.0.1:8080).
	Server string
	// Secret signs the tokens (the server's --secret).
	Secret string
	// Bearer is a fixed token used instead of minting (foreign servers).
	Bearer string
	// Lessons is the number of lessons, each with one teacher.
	Lessons int
	// Classrooms is the number of classrooms per lesson.
	Classrooms int
	// JoinRate is how many classrooms join per second (all lessons).
	JoinRate float64
	// Duration is how long to measure after the last classroom joined.
	Duration time.Duration
	// Codec is the teacher's video: "vp8" (simulcast q/h/f) or "h264".
	Codec string
	// Audio is the teacher's microphone: "tone" (48 kbit/s stereo; also
	// "") or "voice" (mono 32 kbit/s, as a browser sends speech).
	Audio string
	// Link shapes every classroom's downlink.
	Link LinkProfile
	// Publish is how teachers publish: "ws" (Podium protocol), "whip" or
	// "none" (someone else publishes).
	Publish string
	// Subscribe is how classrooms watch: "ws" or "whep".
	Subscribe string
	// WHIPURL and WHEPURL override the endpoints; "{lesson}" is replaced by
	// the lesson id. Empty means <Server>/whip/{lesson} and /whep/{lesson}.
	WHIPURL, WHEPURL string
	// PublishBack makes every classroom publish a small camera (ws only).
	PublishBack bool
	// ServerPID is the server's process id for CPU and RSS from /proc; 0
	// uses the process_* series of /metrics.
	ServerPID int
	// MetricsURL is the server's /metrics; "" is <Server>/metrics, "-"
	// disables scraping.
	MetricsURL string
	// Edges are further nodes of a cluster with cascading: classrooms are
	// spread over Server (the origin, where every teacher joins) and these
	// (see OriginClassrooms); each node's cost is reported on its own.
	Edges []Node
	// Region is the region label the origin's clients (teachers included)
	// name, so the cluster places the lesson on the origin; "" names none.
	Region string
	// OriginClassrooms, with Edges: the first OriginClassrooms classrooms
	// to join go to the origin and the rest round robin over the edges;
	// negative spreads all classrooms round robin over origin and edges.
	OriginClassrooms int
	// LessonPrefix names the lessons: <prefix>-1, <prefix>-2, ...
	LessonPrefix string
	// Progress is the interval of the live progress line (0 = none).
	Progress time.Duration
	// LoopbackOnly gathers only 127.0.0.1 ICE candidates.
	LoopbackOnly bool
	// Transport is what classrooms' connections may use: TransportUDP (the
	// default), TransportTCP (ICE-TCP only, no UDP at all) or
	// TransportTURNTCP (only the server's TURN over TCP). Teachers always
	// use the default: the scenario is a school behind a TCP-only firewall.
	Transport string
	// Reconnect makes teachers and classrooms rejoin by themselves when
	// they lose the server, as the web pages do (backoff, and every 5 s
	// while the lesson is not live), and reports recovery: from the
	// server answering again to each classroom's first teacher frame.
	// For a restart scenario (the server killed and started again while
	// the tool runs); Podium protocol only.
	Reconnect bool
	// Receiver is how classrooms receive: ReceiverPion (the default: pion's
	// whole receive pipeline, as any Go client) or ReceiverLean (lean.go:
	// the tool's own, so that one core drives several hundred classrooms;
	// UDP, no link emulation, no reconnect or publish-back).
	Receiver string
	// leanLoss, in tests, drops lean classrooms' video packets.
	leanLoss *leanLoss
	// FFmpeg is the ffmpeg binary that makes the media files once.
	FFmpeg string
	// Log receives debug and error logs; nil discards them.
	Log *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Lessons < 1 || c.Lessons > 1000 {
		errs = append(errs, fmt.Errorf("lessons must be 1..1000, got %d", c.Lessons))
	}
	if c.Classrooms < 0 || c.Classrooms > 100000 {
		errs = append(errs, fmt.Errorf("classrooms must be 0..100000, got %d", c.Classrooms))
	}
	if c.JoinRate <= 0 {
		errs = append(errs, fmt.Errorf("join-rate must be positive, got %g", c.JoinRate))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration must be positive, got %s", c.Duration))
	}
	if c.Audio != "" && c.Audio != "tone" && c.Audio != "voice" {
		errs = append(errs, fmt.Errorf("audio must be tone or voice, got %q", c.Audio))
	}
	if c.Codec != "vp8" && c.Codec != "h264" {
		errs = append(errs, fmt.Errorf("codec must be vp8 or h264, got %q", c.Codec))
	}
	if c.Publish != "ws" && c.Publish != "whip" && c.Publish != "none" {
		errs = append(errs, fmt.Errorf("publish must be ws, whip or none, got %q", c.Publish))
	}
	if c.Subscribe != "ws" && c.Subscribe != "whep" {
		errs = append(errs, fmt.Errorf("subscribe must be ws or whep, got %q", c.Subscribe))
	}
	if c.PublishBack && c.Subscribe != "ws" {
		errs = append(errs, errors.New("publish-back needs subscribe=ws"))
	}
	switch c.Transport {
	case "", TransportUDP, TransportTCP: // "" is TransportUDP
	case TransportTURNTCP:
		// The TURN URLs and credentials come in the Podium join reply.
		if c.Subscribe != "ws" {
			errs = append(errs, errors.New("transport turn-tcp needs subscribe=ws"))
		}
	default:
		errs = append(errs, fmt.Errorf("transport must be udp, tcp or turn-tcp, got %q", c.Transport))
	}
	if c.Secret == "" && c.Bearer == "" {
		errs = append(errs, errors.New("need --secret (to mint tokens) or --bearer"))
	}
	if c.Secret != "" && len(c.Secret) < auth.MinSecretLen {
		errs = append(errs, fmt.Errorf("secret must be at least %d characters", auth.MinSecretLen))
	}
	if !strings.HasPrefix(c.Server, "http://") && !strings.HasPrefix(c.Server, "https://") {
		errs = append(errs, fmt.Errorf("server must be an http(s):// URL, got %q", c.Server))
	}
	for _, e := range c.Edges {
		if !strings.HasPrefix(e.URL, "http://") && !strings.HasPrefix(e.URL, "https://") {
			errs = append(errs, fmt.Errorf("edge must be an http(s):// URL, got %q", e.URL))
		}
	}
	if c.Reconnect && (c.Publish == "whip" || c.Subscribe != "ws" || len(c.Edges) > 0) {
		errs = append(errs, errors.New("reconnect needs the Podium protocol (publish ws or none, subscribe ws) on one node"))
	}
	switch c.Receiver {
	case "", ReceiverPion:
	case ReceiverLean:
		if c.Link.Active() || c.Reconnect || c.PublishBack || (c.Transport != "" && c.Transport != TransportUDP) {
			errs = append(errs, errors.New("receiver lean takes no --link, --reconnect, --publish-back or --transport other than udp"))
		}
	default:
		errs = append(errs, fmt.Errorf("receiver must be pion or lean, got %q", c.Receiver))
	}
	if len(c.Edges) > 0 && (c.WHIPURL != "" || c.WHEPURL != "") {
		errs = append(errs, errors.New("--edge needs the default WHIP/WHEP endpoints (no --whip-url/--whep-url)"))
	}
	return errors.Join(errs...)
}

// Main is `podium loadtest`: it parses args, runs, prints the live progress
// line and the final table to stdout, and writes the JSON report.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stdout)
	c := Config{}
	fs.StringVar(&c.Server, "server", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&c.Secret, "secret", os.Getenv("PODIUM_SECRET"), "token secret of the server (or PODIUM_SECRET)")
	fs.StringVar(&c.Bearer, "bearer", "", "fixed bearer token instead of --secret (foreign WHIP/WHEP servers)")
	fs.IntVar(&c.Lessons, "lessons", 1, "number of lessons, each with one synthetic teacher")
	fs.IntVar(&c.Classrooms, "classrooms", 10, "classrooms per lesson")
	fs.Float64Var(&c.JoinRate, "join-rate", 20, "classrooms joining per second")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measuring time after the last classroom joined")
	fs.StringVar(&c.Codec, "codec", "vp8", "teacher video: vp8 (simulcast 180p/360p/720p) or h264 (360p)")
	fs.StringVar(&c.Audio, "audio", "tone", "teacher microphone: tone (Opus 48 kbit/s stereo) or voice (mono 32 kbit/s, as a browser sends speech)")
	link := fs.String("link", "none", `classroom downlink, e.g. "1mbit,3%" or "rate=1mbit,loss=3%,delay=40ms,jitter=10ms"`)
	fs.StringVar(&c.Publish, "publish", "ws", "teacher publishes over ws (Podium protocol), whip, or none")
	fs.StringVar(&c.Subscribe, "subscribe", "ws", "classrooms watch over ws (Podium protocol) or whep")
	fs.StringVar(&c.WHIPURL, "whip-url", "", "WHIP endpoint ({lesson} is replaced); default <server>/whip/{lesson}")
	fs.StringVar(&c.WHEPURL, "whep-url", "", "WHEP endpoint ({lesson} is replaced); default <server>/whep/{lesson}")
	fs.BoolVar(&c.PublishBack, "publish-back", false, "every classroom also publishes a 180p camera")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "server process id, for CPU and RSS from /proc (default: /metrics process_*)")
	fs.StringVar(&c.MetricsURL, "metrics-url", "", `server metrics URL (default <server>/metrics; "-" disables)`)
	fs.Var(edgeFlag{&c.Edges}, "edge", `another node of a cascading cluster, "URL[,region=R][,pid=N][,metrics=URL]" (repeatable): classrooms are spread over --server (the origin) and the edges`)
	fs.StringVar(&c.Region, "region", "", "region label the origin's clients name (?region=), so the cluster keeps the lesson on --server")
	fs.IntVar(&c.OriginClassrooms, "origin-classrooms", -1, "with --edge: the first N classrooms join the origin, the rest round robin over the edges (-1: round robin over all nodes)")
	fs.StringVar(&c.LessonPrefix, "lesson-prefix", "loadtest", "lesson ids are <prefix>-1, <prefix>-2, ...")
	fs.DurationVar(&c.Progress, "progress", 2*time.Second, "progress line interval (0 disables)")
	fs.BoolVar(&c.LoopbackOnly, "loopback", true, "gather only 127.0.0.1 ICE candidates")
	fs.StringVar(&c.Transport, "transport", TransportUDP, "classrooms' connections: udp (UDP and TCP candidates, as a browser), tcp (ICE-TCP only, no UDP), or turn-tcp (relayed by the server's TURN over TCP only); teachers use udp")
	fs.StringVar(&c.Receiver, "receiver", ReceiverPion, "how classrooms receive: pion (pion/webrtc's receive pipeline) or lean (the tool's own: ICE, DTLS, SRTP and a browser's feedback at a fraction of the CPU, for capacity runs of hundreds of classrooms; UDP only, no --link)")
	fs.BoolVar(&c.Reconnect, "reconnect", false, "rejoin after losing the server, as the web pages do, and report recovery (for a server killed and restarted during the run)")
	jsonPath := fs.String("json", "", `write the JSON report to this file ("-" = stdout)`)
	verbose := fs.Bool("v", false, "log errors of single classrooms")
	cpuProfile := fs.String("cpuprofile", "", "write the tool's own CPU profile (pprof) to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest: unexpected arguments %q", fs.Args())
	}
	p, err := ParseLinkProfile(*link)
	if err != nil {
		return err
	}
	c.Link = p
	if *verbose {
		c.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// The tool allocates per packet inside pion; with hundreds of
	// classrooms a lazier collector buys CPU for memory, which is plenty.
	debug.SetGCPercent(400)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("loadtest: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := Run(ctx, c, stdout)
	if rep != nil {
		rep.WriteTable(stdout)
		if *jsonPath != "" {
			if werr := rep.WriteJSONFile(*jsonPath, stdout); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return err
}

// runner holds one run's shared state.
type runner struct {
	cfg    Config
	log    *slog.Logger
	issuer *auth.Issuer
	http   *http.Client
	files  testmedia.Files
	clips  *clips
	// lean is the lean classrooms' certificate, leanPollers what reads
	// their sockets (Receiver lean).
	lean        *leanIdentity
	leanPollers *leanPollers
}

func (r *runner) token(lesson string, role sfu.Role, name string) (string, error) {
	if r.issuer == nil {
		return r.cfg.Bearer, nil
	}
	tok, _, err := r.issuer.Issue(auth.Request{Room: lesson, Role: role, Name: name, TTL: 2*time.Hour + r.cfg.Duration})
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return tok, nil
}

func (r *runner) endpoint(override, kind, lesson string) string {
	if override != "" {
		return strings.ReplaceAll(override, "{lesson}", lesson)
	}
	// The base URL may carry parameters (a cluster node's ?region=).
	base, query, _ := strings.Cut(r.cfg.Server, "?")
	u := strings.TrimSuffix(base, "/") + "/" + kind + "/" + lesson
	if query != "" {
		u += "?" + query
	}
	return u
}

// Run performs one load test and returns its report. The report is
// returned (partial) even when the run fails part way.
func Run(ctx context.Context, c Config, progress io.Writer) (*Report, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	if c.Link.Queue == 0 {
		c.Link.Queue = defaultQueue
	}
	if c.Transport == "" {
		c.Transport = TransportUDP
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if progress == nil {
		progress = io.Discard
	}
	r := &runner{cfg: c, log: c.Log, http: &http.Client{Timeout: 15 * time.Second}}
	if c.Secret != "" {
		iss, err := auth.NewIssuer(c.Secret)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		r.issuer = iss
	}
	if c.Receiver == ReceiverLean {
		id, err := newLeanIdentity()
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		r.lean = id
		if r.leanPollers, err = newLeanPollers(); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		defer r.leanPollers.stop() // after run: every classroom is closed
	}
	if c.Publish != "none" || c.PublishBack {
		ff := c.FFmpeg
		if ff == "" {
			p, ok := testenv.LookPath("ffmpeg")
			if !ok {
				return nil, errors.New("loadtest: ffmpeg not found: it encodes the media files once")
			}
			ff = p
		}
		files, err := testmedia.Cached(ff)
		if err != nil {
			return nil, fmt.Errorf("loadtest: media: %w", err)
		}
		r.files = files
		if r.clips, err = loadClips(files); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}
	return r.run(ctx, progress)
}

func (r *runner) run(ctx context.Context, progress io.Writer) (*Report, error) {
	c := r.cfg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	watch := newSelfWatch()
	// One runner and one cost per node: a node's runner differs only in
	// the base URL its sessions use (with the node's ?region=).
	nodes := c.nodes()
	nodeRunners := make([]*runner, len(nodes))
	costs := make([]*serverCost, len(nodes))
	for i, n := range nodes {
		base, err := withRegion(n.URL, n.Region)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %s: %w", nodeName(i), err)
		}
		nr := *r
		nr.cfg.Server = base
		nodeRunners[i] = &nr
		costs[i] = newServerCost(r, ctx, n)
	}

	// The 10 ms lag probe: how late the tool's own timers fire.
	var probes sync.WaitGroup
	var lagMu sync.Mutex
	probes.Add(1)
	go func() {
		defer probes.Done()
		const period = 10 * time.Millisecond
		t := time.NewTimer(period)
		defer t.Stop()
		due := time.Now().Add(period)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				now := time.Now()
				lagMu.Lock()
				watch.lag.add(max(0, now.Sub(due)))
				lagMu.Unlock()
				due = now.Add(period)
				t.Reset(period)
			}
		}
	}()

	var restarts *serverWatch
	if c.Reconnect {
		restarts = newServerWatch(c.Server)
		probes.Add(1)
		go func() {
			defer probes.Done()
			restarts.run(ctx)
		}()
	}

	lessons := make([]*lesson, c.Lessons)
	var teachers []*session
	var resources []string
	rep := &Report{Config: reportConfig(c), Started: time.Now()}
	defer func() {
		for _, t := range teachers {
			t.close()
		}
		for _, res := range resources {
			httpDelete(r.http, res, r.cfg.Bearer)
		}
	}()

	plan := mediaPlan{files: r.files, clips: r.clips, codec: c.Codec, simulcast: true, audio: true, voice: c.Audio == "voice"}
	var players sync.WaitGroup
	defer players.Wait()
	defer cancel()
	for i := range lessons {
		l := &lesson{id: fmt.Sprintf("%s-%d", c.LessonPrefix, i+1), book: newStampBook()}
		lessons[i] = l
		if c.Publish == "none" {
			continue
		}
		tok, err := r.token(l.id, sfu.RoleTeacher, "loadtest teacher")
		if err != nil {
			return rep, err
		}
		t := &session{r: nodeRunners[0], l: l, name: "teacher " + l.id, token: tok}
		teachers = append(teachers, t)
		switch {
		case c.Publish == "ws" && c.Reconnect:
			t.api, err = newAPI(peerOptions{loopbackOnly: c.LoopbackOnly})
			if err == nil {
				err = t.teachRejoining(ctx, plan, &players)
			}
			if err != nil {
				return rep, fmt.Errorf("loadtest: teacher of %s: %w", l.id, err)
			}
			continue
		case c.Publish == "ws":
			t.api, err = newAPI(peerOptions{loopbackOnly: c.LoopbackOnly})
			if err == nil {
				err = t.publishWS(ctx, plan, false)
			}
		case c.Publish == "whip":
			var res string
			res, err = t.publishWHIP(ctx, r.http, plan)
			if res != "" {
				resources = append(resources, res)
			}
		}
		if err == nil {
			err = waitConnected(ctx, t.pub.pc, 15*time.Second)
		}
		if err != nil {
			return rep, fmt.Errorf("loadtest: teacher of %s: %w", l.id, err)
		}
		players.Add(1)
		go func() {
			defer players.Done()
			if err := t.pub.play(ctx); err != nil {
				r.log.Error("teacher media", "lesson", l.id, "err", err)
			}
		}()
	}
	// Let the first keyframes reach the server before classrooms come.
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
	}

	total := c.Lessons * c.Classrooms
	stats := make([]*classroomStats, 0, total)
	nodeOf := make(map[*classroomStats]int, total) // under statsMu
	var statsMu sync.Mutex
	var rooms sync.WaitGroup
	roomCtx, stopRooms := context.WithCancel(ctx)
	defer stopRooms()

	join := func(l *lesson, idx, node int) {
		defer rooms.Done()
		name := fmt.Sprintf("classroom %d", idx+1)
		st := &classroomStats{lesson: l.id, name: name, start: time.Now()}
		statsMu.Lock()
		stats = append(stats, st)
		nodeOf[st] = node
		statsMu.Unlock()
		r := nodeRunners[node]
		lf := &linkFactory{profile: c.Link}
		var api *peerAPI
		if c.Receiver != ReceiverLean {
			var err error
			if api, err = newAPI(peerOptions{link: lf, loopbackOnly: c.LoopbackOnly, transport: c.Transport}); err != nil {
				st.fail(err)
				return
			}
		}
		role := sfu.RoleClassroom
		if c.Subscribe == "whep" {
			role = sfu.RoleViewer
		}
		tok, err := r.token(l.id, role, name)
		if err != nil {
			st.fail(err)
			return
		}
		s := &session{r: r, l: l, name: name, token: tok, api: api, link: lf, stats: st}
		defer func() { st.linkDropped, st.linkQueueDropped = lf.dropped() }() // after close, below
		defer s.close()
		if c.Subscribe == "whep" {
			subscribe := s.subscribeWHEP
			if c.Receiver == ReceiverLean {
				subscribe = s.subscribeWHEPLean
			}
			res, err := subscribe(roomCtx, r.http)
			if res != "" {
				defer httpDelete(r.http, res, tok)
			}
			if err != nil {
				st.fail(err)
				return
			}
		} else {
			back := mediaPlan{}
			if c.PublishBack {
				back = mediaPlan{files: r.files, clips: r.clips, codec: "vp8"}
			}
			if c.Reconnect {
				s.stayJoined(roomCtx, back, true, func(ctx context.Context) {
					st.mark(&st.joinedAt)
					if s.pub != nil {
						_ = s.pub.play(ctx)
					}
					<-ctx.Done()
				})
				return
			}
			if err := s.publishWS(roomCtx, back, true); err != nil {
				st.fail(err)
				return
			}
			if s.pub != nil {
				players.Add(1)
				go func() {
					defer players.Done()
					_ = s.pub.play(roomCtx)
				}()
			}
		}
		st.mu.Lock()
		st.joinedAt = time.Now()
		st.mu.Unlock()
		<-roomCtx.Done()
	}

	var tick <-chan time.Time
	if c.Progress > 0 {
		t := time.NewTicker(c.Progress)
		defer t.Stop()
		tick = t.C
	}
	snapshot := func() []*classroomStats {
		statsMu.Lock()
		defer statsMu.Unlock()
		return append([]*classroomStats(nil), stats...)
	}
	var prevBytes uint64
	prevAt := time.Now()
	printProgress := func(now time.Time) {
		watch.sampleCPU(now)
		for _, cost := range costs {
			cost.sample(ctx)
		}
		all := snapshot()
		var bytes uint64
		receiving, failed := 0, 0
		for _, s := range all {
			s.video.mu.Lock()
			bytes += s.video.bytes
			if !s.video.lastFrame.IsZero() && now.Sub(s.video.lastFrame) < 2*time.Second {
				receiving++
			}
			s.video.mu.Unlock()
			s.audio.mu.Lock()
			bytes += s.audio.bytes
			s.audio.mu.Unlock()
			s.mu.Lock()
			if s.err != "" {
				failed++
			}
			s.mu.Unlock()
		}
		rate := float64(bytes-prevBytes) * 8 / now.Sub(prevAt).Seconds()
		prevBytes, prevAt = bytes, now
		lagMu.Lock()
		lag, lagBad := watch.lag.quantile(0.99), watch.lagSaturated()
		lagMu.Unlock()
		var cpus, rsss []string
		for _, cost := range costs {
			cpus, rsss = append(cpus, cost.cpuNow()), append(rsss, mib(cost.last.rss))
		}
		// With several nodes: origin/edge 1/... in that order.
		line := fmt.Sprintf("[%5.1fs] classrooms %d/%d receiving %d failed %d | in %.1f Mbit/s | server cpu %s rss %s | tool cpu %.0f%% lag p99 %s",
			now.Sub(rep.Started).Seconds(), len(all), total, receiving, failed, rate/1e6,
			strings.Join(cpus, "/"), strings.Join(rsss, "/"), watch.cpuUse*100, lag.Round(100*time.Microsecond))
		if watch.saturated() || lagBad {
			line += " TOOL SATURATED"
		}
		fmt.Fprintln(progress, line)
	}

	// Join at the set rate, round-robin over lessons.
	interval := time.Duration(float64(time.Second) / c.JoinRate)
	next := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if wait := time.Until(next); wait > 0 {
			timer := time.NewTimer(wait)
		waitJoin:
			for {
				select {
				case <-timer.C:
					break waitJoin
				case <-ctx.Done():
					timer.Stop()
					break waitJoin
				case now := <-tick:
					printProgress(now)
				}
			}
		}
		next = next.Add(interval)
		rooms.Add(1)
		go join(lessons[i%c.Lessons], i/c.Lessons, assignNode(i, len(nodes), c.OriginClassrooms))
	}
	joinedAll := time.Now()
	rep.JoinPhase = joinedAll.Sub(rep.Started).Round(time.Millisecond).String()
	for _, cost := range costs {
		cost.markSteady(ctx)
	}
	watch.markSteady(joinedAll, snapshot())
	end := time.NewTimer(c.Duration)
	defer end.Stop()
	half := time.NewTimer(c.Duration / 2)
	defer half.Stop()
	var halfAt time.Time
measure:
	for {
		select {
		case <-end.C:
			break measure
		case halfAt = <-half.C:
			for _, s := range snapshot() {
				s.markHalf()
			}
		case <-ctx.Done():
			break measure
		case now := <-tick:
			printProgress(now)
		}
	}
	finished := time.Now()
	watch.sampleCPU(finished)
	watch.finishSteady(finished, snapshot())
	for _, cost := range costs {
		cost.sample(context.Background())
		cost.finish(context.Background())
	}
	all := snapshot()
	for _, s := range all {
		s.video.finish(finished)
	}
	// Read what each classroom ran over while every connection is still
	// up: once the rooms stop, the server closes its side, and a TCP pair
	// can be gone before a classroom's own teardown would look at it.
	var transports sync.WaitGroup
	for _, s := range all {
		transports.Go(s.recordTransport)
	}
	transports.Wait()
	stopRooms()
	rooms.Wait()
	cancel()
	probes.Wait()
	lagMu.Lock()
	statsMu.Lock()
	assigned := maps.Clone(nodeOf)
	statsMu.Unlock()
	rep.fill(all, finished, halfAt, watch, nodes, costs, assigned)
	lagMu.Unlock()
	if restarts != nil {
		rep.fillRecovery(all, restarts)
	}
	return rep, nil
}

func mib(b int64) string {
	if b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20))
}
