package transcode

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// POST /api/vod/lessons/{lesson}/transcode: a lesson without a recording
// is 404 and queues nothing; an invalid id is 400; a recorded lesson is
// queued (202).
func TestTranscodeRequestNeedsARecording(t *testing.T) {
	store := localStore(t)
	q := startQueue(t, store, QueueConfig{Config: small, Workers: 1, MaxAttempts: 1})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/vod/lessons/{lesson}/transcode", Handlers{Q: q}.Transcode)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(lesson string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/api/vod/lessons/"+lesson+"/transcode", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}

	if code, v := post("ghost-lesson"); code != http.StatusNotFound || v["code"] != "no_recording" {
		t.Fatalf("lesson without a recording: %d %v", code, v)
	}
	if _, ok := lessonJob(t, q, "ghost-lesson"); ok {
		t.Fatal("a job was queued for a lesson without a recording")
	}
	if code, v := post("_starts-with-punctuation"); code != http.StatusBadRequest {
		t.Fatalf("invalid lesson id: %d %v", code, v)
	}

	writeRecording(t, store, "recorded", 4, true)
	code, v := post("recorded")
	if code != http.StatusAccepted || v["lesson"] != "recorded" || v["state"] != StateQueued {
		t.Fatalf("recorded lesson: %d %v", code, v)
	}
	id, _ := v["id"].(string)
	if j := waitJob(t, q, id, 120*time.Second); j.State != StateDone {
		t.Fatalf("job = %+v", j)
	}
}
