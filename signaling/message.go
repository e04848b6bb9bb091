package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"podium/sfu"
)

// ProtocolVersion is the version of docs/PROTOCOL.md this server speaks.
const ProtocolVersion = 1

// MaxMessageSize is the largest websocket message accepted; larger ones
// close the socket with 1009.
const MaxMessageSize = 64 << 10

// Message is the envelope of every websocket message, both ways.
type Message struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Error codes carried by `error` messages.
const (
	CodeBadJSON            = "bad_json"
	CodeUnsupportedVersion = "unsupported_version"
	CodeUnknownType        = "unknown_type"
	CodeBadRequest         = "bad_request"
	CodeNotJoined          = "not_joined"
	CodeAlreadyJoined      = "already_joined"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "not_found"
	CodeBadSDP             = "bad_sdp"
	CodeCodecMismatch      = "codec_mismatch"
	CodeLessonEnded        = "lesson_ended"
	CodeRateLimited        = "rate_limited"
	CodeMutedByTeacher     = "muted_by_teacher"
	CodeChatDisabled       = "chat_disabled"
	CodeInternal           = "internal"
)

// ErrorData is the payload of an `error` message.
type ErrorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// protocolError is a request failure reported to the client as an `error`
// message; it never closes the socket.
type protocolError struct {
	code, msg string
}

func (e *protocolError) Error() string { return e.code + ": " + e.msg }

func perr(code, format string, args ...any) *protocolError {
	return &protocolError{code: code, msg: fmt.Sprintf(format, args...)}
}

// Client-to-server payloads.

type JoinData struct {
	AutoSubscribe *bool `json:"autoSubscribe,omitempty"`
}

type SDPData struct {
	SDP string `json:"sdp"`
}

type OfferData struct {
	SDP    string             `json:"sdp"`
	Tracks []sfu.PublishTrack `json:"tracks,omitempty"`
}

type CandidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

type TrickleData struct {
	Target    sfu.Target    `json:"target"`
	Candidate CandidateInit `json:"candidate"`
}

type TrackIDsData struct {
	TrackIDs []string `json:"trackIds"`
}

// PauseData is `pause`: stop (or start again) forwarding subscribed video
// tracks the page does not show now.
type PauseData struct {
	TrackIDs []string `json:"trackIds"`
	Paused   bool     `json:"paused"`
}

type SetMaxLayerData struct {
	TrackID string `json:"trackId"`
	Layer   int    `json:"layer"`
}

// MuteData is `mute`: either a track (a microphone, given by its server
// id or by the MediaStreamTrack id the client announced, stands for its
// participant's microphone) or a participant's microphone.
type MuteData struct {
	TrackID       string `json:"trackId,omitempty"`
	ParticipantID string `json:"participantId,omitempty"`
	Muted         bool   `json:"muted"`
}

// MuteAllData is `muteAll` (teacher only): every classroom's microphone.
type MuteAllData struct {
	Muted bool `json:"muted"`
}

// CameraData is `camera`: one's own camera off or on again.
type CameraData struct {
	Off bool `json:"off"`
}

// SetChatData is `setChat` (teacher only): the classroom chat on or off.
type SetChatData struct {
	Enabled bool `json:"enabled"`
}

type StageData struct {
	ParticipantID string `json:"participantId"`
}

type RaiseHandData struct {
	Raised bool `json:"raised"`
}

type ChatData struct {
	Text string `json:"text"`
}

// Server-to-client payloads.

type JoinedData struct {
	Participant  sfu.ParticipantInfo   `json:"participant"`
	Lesson       sfu.LessonInfo        `json:"lesson"`
	Participants []sfu.ParticipantInfo `json:"participants"`
	Tracks       []sfu.TrackInfo       `json:"tracks"`
	Stage        string                `json:"stage"`
	ICEServers   []sfu.ICEServer       `json:"iceServers"`
	Protocol     int                   `json:"protocol"`
}

type ParticipantEventData struct {
	Participant sfu.ParticipantInfo `json:"participant"`
	Reason      string              `json:"reason,omitempty"`
}

type TrackEventData struct {
	Track sfu.TrackInfo `json:"track"`
}

// LessonEventData is `lessonUpdated`: the lesson's whole state.
type LessonEventData struct {
	Lesson sfu.LessonInfo `json:"lesson"`
}

type ChatEventData struct {
	From     string `json:"from"`
	FromName string `json:"fromName"`
	Text     string `json:"text"`
	Time     string `json:"time"`
}

type MuteRequestData struct {
	TrackID       string `json:"trackId"`
	ParticipantID string `json:"participantId"`
	Muted         bool   `json:"muted"`
	By            string `json:"by"`
}

type QualityData struct {
	Participants map[string]sfu.Quality `json:"participants"`
}

type SpeakingData struct {
	ParticipantIDs []string `json:"participantIds"`
}

type ReasonData struct {
	Reason string `json:"reason"`
}

type ShutdownData struct {
	Reason           string `json:"reason"`
	ReconnectAfterMs int    `json:"reconnectAfterMs"`
}

// clientTypes are the message types a client may send.
var clientTypes = map[string]bool{
	"join": true, "offer": true, "answer": true, "trickle": true,
	"subscribe": true, "unsubscribe": true, "setMaxLayer": true, "pause": true, "mute": true, "muteAll": true,
	"camera": true, "setChat": true,
	"stage": true, "raiseHand": true, "chat": true, "restartIce": true,
	"endLesson": true, "leave": true, "ping": true, "stats": true,
}

const maxIDLen = 64

// DecodeMessage parses and checks one client message envelope. The payload
// is left raw; decodeData checks it per type. Every failure is a
// *protocolError with the code the client should get, and the id of the
// request when it could be read.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	if !utf8.Valid(b) {
		return m, perr(CodeBadJSON, "message is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return Message{}, perr(CodeBadJSON, "message is not a JSON envelope: %s", jsonErr(err))
	}
	if dec.More() {
		return Message{}, perr(CodeBadJSON, "trailing data after the JSON message")
	}
	if len(m.ID) > maxIDLen {
		m.ID = ""
		return m, perr(CodeBadRequest, "id is longer than %d characters", maxIDLen)
	}
	if m.V != ProtocolVersion {
		return m, perr(CodeUnsupportedVersion, "protocol version %d is not supported (want %d)", m.V, ProtocolVersion)
	}
	if !clientTypes[m.Type] {
		if m.Type == "" {
			return m, perr(CodeBadRequest, "type is required")
		}
		return m, perr(CodeUnknownType, "unknown message type %q", truncate(m.Type, 40))
	}
	return m, nil
}

// decodeData unmarshals a message's payload strictly (unknown fields are
// refused so that typos are caught); an absent payload is an empty object.
func decodeData(m Message, v any) error {
	data := m.Data
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return perr(CodeBadRequest, "data for %q: %s", m.Type, jsonErr(err))
	}
	return nil
}

func jsonErr(err error) string {
	return truncate(strings.TrimPrefix(err.Error(), "json: "), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// wire is m as it goes on the socket: one text frame, written in one
// system call (websocket.Conn.WriteMessage). WriteJSON wrote a message
// through the connection's 4 KiB write buffer, a frame and a write(2) for
// each 4 KiB of it, and compacted the already encoded data once more: the
// teacher's dashboard at 200 classrooms was about 15 of each every 2 s.
// Data is json.Marshal's output (encode), so it goes as it is.
func (m Message) wire() []byte {
	b := make([]byte, 0, len(m.Data)+len(m.Type)+len(m.ID)+40)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(m.V), 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, m.Type)
	if m.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, m.ID)
	}
	if len(m.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, m.Data...)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// encode builds a server message.
func encode(typ, id string, data any) Message {
	m := Message{V: ProtocolVersion, Type: typ, ID: id}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			b, _ = json.Marshal(ErrorData{Code: CodeInternal, Message: "cannot encode " + typ})
			m.Type = "error"
		}
		m.Data = b
	}
	return m
}
