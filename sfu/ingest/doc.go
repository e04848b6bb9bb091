// Package ingest pulls RTSP cameras and interactive whiteboards into lessons.
//
// It owns the life of each registered source: the RTSP session
// (gortsplib/v4, TCP or UDP, basic/digest auth, keep-alive), reconnecting
// with capped exponential backoff, and turning what the camera sends into
// sfu Tracks of the lesson: H.264 is re-packetized without transcoding (SPS
// and PPS before every IDR; a late joiner starts at the camera's next
// keyframe, since nothing but the live stream enters the track), other
// video (H.265, MJPEG) and non-Opus audio are transcoded by an ffmpeg
// subprocess the source owns. Output RTP is continuous across camera
// restarts: the source's own SSRC, sequence numbers and timestamps.
//
// It also owns the admin REST API for sources and their Prometheus metrics.
// It knows nothing of WebRTC, signaling, auth or storage: a source is just a
// participant with sfu.RoleSource whose tracks the sfu fans out like any
// other, so clients and the recorder see it without knowing it is RTSP.
package ingest
