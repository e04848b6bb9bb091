package sfu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// A node that restarts (a crash, an upgrade) takes its classrooms back at
// once. They rejoin by themselves, but a lesson that is not live sends a
// classroom away to ask again later (the pages wait 5 s each time), so a
// classroom back before its teacher lost seconds of the lesson for
// nothing. The registry keeps the lessons someone took part in in a small
// file (written when a lesson is first joined and when it ends; a shutdown
// is no end); after a restart such a lesson is resumable: the first
// participant to come back within the empty-lesson grace brings it back
// (RoomOrResumed). A lesson nobody returns to is not brought back, so the
// recorder closes it as interrupted.

// ResumeLessons reads the lessons the file at path lists (those a previous
// run of this node had live), makes them resumable for the empty-lesson
// grace, and keeps the file current from now on. It returns their ids; a
// missing file is no error.
func (rs *Rooms) ResumeLessons(path string) ([]string, error) {
	var saved []LessonInfo
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("resume lessons: %w", err)
	default:
		if err := json.Unmarshal(b, &saved); err != nil {
			rs.log.Warn("the list of live lessons is unreadable; none resumable", "file", path, "err", err)
			saved = nil
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.statePath = path
	rs.resumable = make(map[string]LessonInfo, len(saved))
	var ids []string
	for _, info := range saved {
		if !ValidRoomID(info.ID) {
			continue
		}
		if _, live := rs.rooms[info.ID]; live {
			continue
		}
		rs.resumable[info.ID] = info
		// Still listed: a node that dies again before anyone is back
		// offers the lesson again.
		rs.taken[info.ID] = info
		ids = append(ids, info.ID)
	}
	sort.Strings(ids)
	if len(ids) > 0 && rs.emptyGrace > 0 {
		rs.resumeTimer = time.AfterFunc(rs.emptyGrace, rs.expireResumable)
	}
	rs.saveLocked()
	return ids, nil
}

// RoomOrResumed returns the live lesson with the id, or brings back a
// lesson of the last run that nobody has come back to yet (ResumeLessons).
// A lesson brought back ends after the empty-lesson grace unless someone
// takes part in it.
func (rs *Rooms) RoomOrResumed(id string) (*Room, bool) {
	rs.mu.Lock()
	if r, ok := rs.rooms[id]; ok {
		rs.mu.Unlock()
		return r, true
	}
	info, ok := rs.resumable[id]
	if !ok {
		rs.mu.Unlock()
		return nil, false
	}
	delete(rs.resumable, id)
	r := rs.newRoomLocked(info)
	hooks := append([]func(*Room){}, rs.onCreated...)
	rs.mu.Unlock()
	for _, fn := range hooks {
		fn(r)
	}
	r.resume()
	rs.log.Info("lesson resumed after a restart", "lesson", id)
	return r, true
}

// expireResumable ends the offer: lessons nobody came back to within the
// grace are over and leave the file.
func (rs *Rooms) expireResumable() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id := range rs.resumable {
		delete(rs.taken, id)
	}
	rs.resumable = nil
	rs.saveLocked()
}

// resume marks a lesson brought back after a restart as taken part in, so
// that it ends after the grace if nobody stays.
func (r *Room) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taken = true
	r.startEmptyTimerLocked()
}

// remember is a room's onTaken: the lesson is kept across a restart.
func (rs *Rooms) remember(r *Room) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.rooms[r.ID()] != r {
		return
	}
	rs.taken[r.ID()] = r.Info()
	rs.saveLocked()
}

// saveLocked writes the taken lessons to statePath (when set), replacing
// the file whole. The caller holds rs.mu.
func (rs *Rooms) saveLocked() {
	if rs.statePath == "" {
		return
	}
	list := make([]LessonInfo, 0, len(rs.taken))
	for _, info := range rs.taken {
		// What the lesson is, not its live state (recording, chat), which
		// the parts set again when it resumes.
		list = append(list, LessonInfo{ID: info.ID, Title: info.Title, CreatedAt: info.CreatedAt})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	b, _ := json.Marshal(list)
	tmp := rs.statePath + ".tmp"
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, rs.statePath)
	}
	if err != nil {
		rs.log.Warn("cannot save the list of live lessons; a restart will not resume them", "file", filepath.Base(rs.statePath), "err", err)
	}
}
