// Package transcode owns the jobs that turn a finished lesson recording into
// VOD assets in the same storage: an H.264/AAC HLS ladder with a master
// playlist and an audio-only rendition, the composite picture and mix of
// what a classroom saw and heard (the screen share while shared, whoever
// was on stage, the teacher as picture-in-picture; every voice heard) with
// a chapter for each change, poster, thumbnail sprites, one MP4 download,
// and clips cut from a lesson.
//
// It runs ffmpeg as a subprocess. Jobs are River jobs in the replay
// database (PostgreSQL when nodes share it, the embedded SQLite file
// otherwise): typed args per kind (lesson, clip), unique per lesson or
// clip, claimed by exactly one worker of every node sharing the database,
// retried with backoff, cancelable, surviving restarts. Completed
// recordings are found by a delimiter listing of lessons/, never by
// listing their segments. It reads recordings only
// through the manifest JSON contract (see vod.Manifest) and writes the
// vod.Assets contract; it knows nothing of WebRTC or of the recorder's
// internals, and serves no media.
package transcode
