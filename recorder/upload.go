package recorder

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"sync"
	"time"
)

// uploadJob is one object to move from the spool to storage, or a request
// to rewrite a lesson's manifest.
type uploadJob struct {
	lesson   *lesson
	key      string // spooled object; "" for the manifest
	manifest bool
}

// uploader moves spooled objects to storage one at a time, in the order
// they were closed, retrying the head of the queue until storage takes it:
// a slow or absent storage never reorders or loses a segment.
type uploader struct {
	r *Recorder

	mu     sync.Mutex
	queue  []uploadJob
	notify chan struct{}
	idle   chan struct{} // closed and replaced when the queue empties
}

func newUploader(r *Recorder) *uploader {
	return &uploader{r: r, notify: make(chan struct{}, 1), idle: make(chan struct{})}
}

func (u *uploader) push(j uploadJob) {
	u.mu.Lock()
	u.queue = append(u.queue, j)
	u.mu.Unlock()
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

func (u *uploader) pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queue)
}

// drained returns a channel closed once the queue is empty.
func (u *uploader) drained() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queue) == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return u.idle
}

func (u *uploader) run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for {
		u.mu.Lock()
		if len(u.queue) == 0 {
			close(u.idle)
			u.idle = make(chan struct{})
			u.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-u.notify:
			}
			continue
		}
		j := u.queue[0]
		u.mu.Unlock()

		err := u.do(ctx, j)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.r.uploadFailed(j, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		u.mu.Lock()
		u.queue[0] = uploadJob{}
		u.queue = u.queue[1:]
		u.mu.Unlock()
	}
}

func (u *uploader) do(ctx context.Context, j uploadJob) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if j.manifest {
		data, complete, err := j.lesson.storageManifest()
		if err != nil {
			return err
		}
		if err := u.r.store.Put(ctx, j.lesson.manifestKey(), bytes.NewReader(data), int64(len(data)), "application/json"); err != nil {
			return err
		}
		j.lesson.manifestUploaded(complete)
		return nil
	}
	data, err := u.r.spool.read(j.key)
	if errors.Is(err, fs.ErrNotExist) {
		j.lesson.uploaded(j.key, 0) // already uploaded before a restart
		return nil
	}
	if err != nil {
		return err
	}
	ct := "video/iso.segment"
	if len(j.key) > 4 && j.key[len(j.key)-4:] == ".mp4" {
		ct = "video/mp4"
	}
	if err := u.r.store.Put(ctx, j.key, bytes.NewReader(data), int64(len(data)), ct); err != nil {
		return err
	}
	u.r.spool.remove(j.key)
	j.lesson.uploaded(j.key, len(data))
	return nil
}
