package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"

	"podium/clients/goclient"
	"podium/cluster"
	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
	"podium/signaling/auth"
)

const (
	e2eSecret     = "cluster-e2e-secret-0123456789"
	e2eClusterKey = "cluster-e2e-key"
)

// startClusterNode starts one `podium serve` of the cluster, registered
// as id in redis, with the cluster's shared secret.
func startClusterNode(t *testing.T, redis, id string, extra ...string) *testenv.Podium {
	t.Helper()
	addr := testenv.FreeAddr(t)
	args := append([]string{"--record=false", "--log-level", "info",
		"--cluster-redis", redis, "--cluster-node-id", id, "--cluster-advertise-url", "http://" + addr,
		"--cluster-key", e2eClusterKey, "--cluster-heartbeat", "200ms"}, extra...)
	return testenv.StartPodiumWith(t, testenv.PodiumOptions{Addr: addr, Secret: e2eSecret, Args: args})
}

// videoReceiver writes the teacher's camera, as one client receives it,
// to IVF so ffprobe can count the frames that decode.
type videoReceiver struct {
	path   string
	mu     sync.Mutex
	w      *ivfwriter.IVFWriter
	frames atomic.Int64
	wg     sync.WaitGroup
}

func newVideoReceiver(t *testing.T, name string) *videoReceiver {
	path := filepath.Join(t.TempDir(), name+".ivf")
	w, err := ivfwriter.New(path, ivfwriter.WithCodec(webrtc.MimeTypeVP8))
	if err != nil {
		t.Fatal(err)
	}
	return &videoReceiver{path: path, w: w}
}

func (v *videoReceiver) onTrack(rt goclient.RemoteTrack) {
	if rt.Track.Kind() != webrtc.RTPCodecTypeVideo || rt.Info.Source != string(sfu.SourceCamera) {
		return
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		for {
			pkt, _, err := rt.Track.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			if v.w != nil {
				_ = v.w.WriteRTP(pkt)
				if pkt.Marker {
					v.frames.Add(1)
				}
			}
			v.mu.Unlock()
		}
	}()
}

// decodedFrames closes the file and returns how many frames ffprobe
// decodes from it, at which size.
func (v *videoReceiver) decodedFrames(t *testing.T) (frames int, size string) {
	t.Helper()
	v.mu.Lock()
	err := v.w.Close()
	v.w = nil
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", v.path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return 0, ""
	}
	return len(lines), lines[0]
}

// clientEvents collects the server messages one client receives.
type clientEvents struct {
	mu   sync.Mutex
	msgs []goclient.Message
}

// watchEvents reads c's events until c closes.
func watchEvents(c *goclient.Client) *clientEvents {
	l := &clientEvents{}
	go func() {
		for m := range c.Events() {
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	return l
}

// count returns how many messages of type typ had data matching want
// (every field of want equal).
func (l *clientEvents) count(typ string, want map[string]any) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m.Type != typ {
			continue
		}
		var d map[string]any
		if json.Unmarshal(m.Data, &d) != nil {
			continue
		}
		ok := true
		for k, v := range want {
			if got, isMap := d[k].(map[string]any); isMap {
				// One level down: {"participant": {"id": ..., "handRaised": true}}.
				for kk, vv := range v.(map[string]any) {
					ok = ok && got[kk] == vv
				}
				continue
			}
			ok = ok && d[k] == v
		}
		if ok {
			n++
		}
	}
	return n
}

// trackOf returns the id of a track announced for a participant, or "".
func (l *clientEvents) trackOf(participant string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		var d struct {
			Track struct {
				ID            string `json:"id"`
				ParticipantID string `json:"participantId"`
			} `json:"track"`
		}
		if m.Type == "trackPublished" && json.Unmarshal(m.Data, &d) == nil && d.Track.ParticipantID == participant {
			return d.Track.ID
		}
	}
	return ""
}

func (l *clientEvents) has(typ string, want map[string]any) func() bool {
	return func() bool { return l.count(typ, want) > 0 }
}

func metricsOf(url string) string {
	res, err := http.Get(url + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestClusterThreeNodeCascade runs Redis and three podium processes on loopback.
// The teacher signals through node 2, which relays to the lesson's owner,
// node 1 (full with its teacher, --cluster-capacity 1). Classrooms reach
// nodes 2 and 3, which become edges mirroring the lesson from node 1; both
// decode the teacher's video. The lesson's control plane crosses nodes
// too: both classrooms get the teacher's chat, the teacher sees the edge
// classrooms, their raised hand and chat, and mutes classroom A's camera
// (classroom A gets muteRequest). Node 3 is killed: its classroom
// reconnects to node 2 and decodes again, and the cluster forgets node 3.
// The teacher ends the lesson: the classrooms on node 2 get lessonEnded.
func TestClusterThreeNodeCascade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three podium processes")
	}
	files := testmedia.ForTest(t)
	testenv.RequireBinary(t, "ffprobe")
	redis := testenv.StartRedis(t)
	n1 := startClusterNode(t, redis, "n1", "--cluster-capacity", "1")
	n2 := startClusterNode(t, redis, "n2")
	n3 := startClusterNode(t, redis, "n3")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	observer, err := cluster.New(ctx, cluster.Config{Redis: redis, Node: cluster.NodeInfo{ID: "observer", URL: "http://observer"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	testenv.WaitFor(t, 30*time.Second, "three nodes registered", func() bool {
		nodes, err := observer.Nodes(ctx)
		return err == nil && len(nodes) == 3
	})

	issuer, err := auth.NewIssuer(e2eSecret)
	if err != nil {
		t.Fatal(err)
	}
	token := func(role sfu.Role, name string) string {
		tok, _, err := issuer.Issue(auth.Request{Room: "maths-9", Role: role, Name: name, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// The teacher signals through node 2; the lesson is placed on node 1.
	teacher, err := goclient.Dial(ctx, n2.URL, token(sfu.RoleTeacher, "Ms. Zhang"), goclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer teacher.Close()
	teacherEvents := watchEvents(teacher)
	if _, err := teacher.Join(ctx, true); err != nil {
		t.Fatal(err)
	}
	if owner, ok, err := observer.Owner(ctx, "maths-9"); err != nil || !ok || owner.ID != "n1" {
		t.Fatalf("lesson owner %+v %v %v, want n1", owner, ok, err)
	}
	defer publishTestCamera(ctx, t, teacher, "teacher", files.VP8[1])()

	testenv.WaitFor(t, 30*time.Second, "node 1 to publish its teacher's load", func() bool {
		nodes, err := observer.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "n1" && n.Load >= 1 {
				return true
			}
		}
		return false
	})

	// Classrooms on nodes 2 and 3.
	join := func(node *testenv.Podium, id, name string) (*goclient.Client, *videoReceiver, *clientEvents) {
		t.Helper()
		v := newVideoReceiver(t, name+"-"+id)
		c, err := goclient.Dial(ctx, node.URL, token(sfu.RoleClassroom, name), goclient.Options{OnTrack: v.onTrack})
		if err != nil {
			t.Fatal(err)
		}
		events := watchEvents(c)
		if _, err := c.Join(ctx, true); err != nil {
			t.Fatal(err)
		}
		return c, v, events
	}
	classA, videoA, eventsA := join(n2, "n2", "Village A")
	defer func() { classA.Close(); videoA.wg.Wait() }()
	classB, videoB, eventsB := join(n3, "n3", "Village B")
	defer func() { classB.Close(); videoB.wg.Wait() }()

	for id, n := range map[string]*testenv.Podium{"n1": n1, "n2": n2, "n3": n3} {
		testenv.WaitFor(t, 30*time.Second, "node "+id+" to hold the lesson", func() bool {
			return strings.Contains(metricsOf(n.URL), "\npodium_lessons 1\n")
		})
	}
	testenv.WaitFor(t, 30*time.Second, "two seconds of video at both classrooms", func() bool {
		return videoA.frames.Load() >= 60 && videoB.frames.Load() >= 60
	})
	for name, v := range map[string]*videoReceiver{"classroom A on node 2": videoA, "classroom B on node 3": videoB} {
		frames, size := v.decodedFrames(t)
		if frames < 30 || size != "640,360" {
			t.Errorf("%s decoded %d frames of %s, want at least 30 of 640,360", name, frames, size)
		}
	}

	// The control plane: the teacher (on node 1) sees both edge
	// classrooms; the classrooms see the teacher's chat; the teacher sees
	// classroom A's raised hand and chat.
	for _, c := range []*goclient.Client{classA, classB} {
		testenv.WaitFor(t, 30*time.Second, "the teacher to see "+c.Self().Name, teacherEvents.has("participantJoined",
			map[string]any{"participant": map[string]any{"id": c.Self().ID, "role": "classroom"}}))
	}
	if err := teacher.Chat(ctx, "Good morning, villages"); err != nil {
		t.Fatal(err)
	}
	teacherChat := map[string]any{"text": "Good morning, villages", "fromName": "Ms. Zhang", "from": teacher.Self().ID}
	testenv.WaitFor(t, 30*time.Second, "the teacher's chat at classroom A on node 2", eventsA.has("chat", teacherChat))
	testenv.WaitFor(t, 30*time.Second, "the teacher's chat at classroom B on node 3", eventsB.has("chat", teacherChat))
	if err := classA.RaiseHand(ctx, true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the teacher to see classroom A's raised hand", teacherEvents.has("participantUpdated",
		map[string]any{"participant": map[string]any{"id": classA.Self().ID, "handRaised": true}}))
	if err := classA.Chat(ctx, "We have a question"); err != nil {
		t.Fatal(err)
	}
	classChat := map[string]any{"text": "We have a question", "fromName": "Village A", "from": classA.Self().ID}
	testenv.WaitFor(t, 30*time.Second, "classroom A's chat at the teacher", teacherEvents.has("chat", classChat))
	testenv.WaitFor(t, 30*time.Second, "classroom A's chat at classroom B", eventsB.has("chat", classChat))
	// Classroom A's own chat comes back to it by way of the origin, and
	// may come after classroom B has it.
	testenv.WaitFor(t, 30*time.Second, "classroom A's chat back at classroom A", eventsA.has("chat", classChat))
	// Once the later chat is everywhere, a duplicate of either would have
	// arrived too.
	if n := eventsB.count("chat", teacherChat); n != 1 {
		t.Errorf("classroom B got the teacher's chat %d times, want once", n)
	}
	if n := eventsA.count("chat", classChat); n != 1 {
		t.Errorf("classroom A got its own chat %d times, want once", n)
	}

	// Classroom A shares its camera; the teacher mutes it: classroom A is
	// asked to stop sending it (muteRequest), as on one node.
	defer publishTestCamera(ctx, t, classA, "village-a", files.VP8[0])()
	var classCamID string
	testenv.WaitFor(t, 30*time.Second, "the teacher to see classroom A's camera", func() bool {
		classCamID = teacherEvents.trackOf(classA.Self().ID)
		return classCamID != ""
	})
	if err := teacher.Mute(ctx, classCamID, true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "classroom A to be asked to mute its camera", eventsA.has("muteRequest",
		map[string]any{"trackId": classCamID, "muted": true, "by": teacher.Self().ID}))
	testenv.WaitFor(t, 30*time.Second, "classroom A to see its camera muted", eventsA.has("trackUpdated",
		map[string]any{"track": map[string]any{"id": classCamID, "muted": true}}))

	// Node 3 dies; its classroom reconnects through node 2.
	n3.Kill()
	select {
	case <-classB.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("classroom B did not notice node 3 died")
	}
	classB.Close()
	videoB.wg.Wait()
	classB2, videoB2, eventsB2 := join(n2, "n2", "Village B")
	defer func() { classB2.Close(); videoB2.wg.Wait() }()
	testenv.WaitFor(t, 30*time.Second, "video at classroom B after reconnecting", func() bool { return videoB2.frames.Load() >= 60 })
	if frames, size := videoB2.decodedFrames(t); frames < 30 || size != "640,360" {
		t.Errorf("classroom B after reconnecting decoded %d frames of %s", frames, size)
	}
	testenv.WaitFor(t, 30*time.Second, "the cluster to forget node 3", func() bool {
		nodes, err := observer.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "n3" {
				return false
			}
		}
		return true
	})

	// The teacher ends the lesson: the classrooms on node 2 are told, as
	// on one node, and their sockets close.
	if err := teacher.EndLesson(ctx); err != nil {
		t.Fatal(err)
	}
	ended := map[string]any{"reason": "the teacher ended the lesson"}
	for name, c := range map[string]struct {
		client *goclient.Client
		events *clientEvents
	}{"classroom A": {classA, eventsA}, "classroom B": {classB2, eventsB2}} {
		testenv.WaitFor(t, 30*time.Second, "lessonEnded at "+name+" on node 2", c.events.has("lessonEnded", ended))
		select {
		case <-c.client.Done():
		case <-time.After(30 * time.Second):
			t.Errorf("%s's socket stayed open after lessonEnded", name)
		}
	}
}

// publishTestCamera publishes a VP8 camera (stream id stream) for the
// client, playing the IVF file until the returned stop is called.
func publishTestCamera(ctx context.Context, t *testing.T, c *goclient.Client, stream, ivf string) (stop func()) {
	t.Helper()
	cam, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, goclient.LocalTrack{Track: cam, Source: string(sfu.SourceCamera), Name: "camera"}); err != nil {
		t.Fatal(err)
	}
	playCtx, stopPlay := context.WithCancel(ctx)
	var playing sync.WaitGroup
	playing.Go(func() { _ = testmedia.PlayIVF(playCtx, ivf, cam, true) })
	return func() { stopPlay(); playing.Wait() }
}
