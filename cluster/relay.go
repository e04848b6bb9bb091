package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"podium/internal/httpx"
)

// Headers the relay reads and sets.
const (
	// ForwardedByHeader marks a request one node relayed to another; the
	// receiving node serves it itself, so a request is relayed at most once.
	ForwardedByHeader = "X-Podium-Forwarded-By"
	// RegionHeader (or the query parameter "region") names the client's
	// region, used when the request places its lesson.
	RegionHeader = "X-Podium-Region"
)

// LessonFunc tells which lesson a request is for; ok is false for requests
// that are not about one lesson (pages, metrics, health), which every node
// serves itself.
type LessonFunc func(r *http.Request) (lesson string, ok bool)

// maxLessonLen bounds a lesson id taken from a request before it becomes a
// Redis key; the owner validates the id itself.
const maxLessonLen = 128

// PathLesson is a LessonFunc for routes of the form <prefix><lesson>[/...],
// e.g. PathLesson("/whip/", "/whep/").
func PathLesson(prefixes ...string) LessonFunc {
	return func(r *http.Request) (string, bool) {
		return LessonFromPath(r.URL.Path, prefixes...)
	}
}

// LessonFromPath returns the path segment after the first matching prefix.
func LessonFromPath(path string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(path, p)
		if !ok {
			continue
		}
		lesson, _, _ := strings.Cut(rest, "/")
		if lesson == "" || len(lesson) > maxLessonLen {
			return "", false
		}
		return lesson, true
	}
	return "", false
}

// FirstLesson combines LessonFuncs: the first that knows the lesson wins.
func FirstLesson(fns ...LessonFunc) LessonFunc {
	return func(r *http.Request) (string, bool) {
		for _, fn := range fns {
			if l, ok := fn(r); ok {
				return l, true
			}
		}
		return "", false
	}
}

// Relay returns a handler that places each lesson request's lesson, serves
// it with next when this node owns the lesson, and otherwise relays it
// (websocket upgrades included) to the owner. Media then flows between the
// client and the owner directly: the owner's ICE candidates carry its own
// addresses. When Redis cannot be reached the node serves the request
// itself, so a Redis outage degrades to independent nodes, not to refusals.
func (r *Registry) Relay(next http.Handler, lessonOf LessonFunc) http.Handler {
	return r.RelayWithEdges(next, lessonOf, Edges{})
}

// Edges lets classrooms be served by nodes other than a lesson's owner.
type Edges struct {
	// Allowed tells whether a request may be served by an edge rather than
	// the owner: true for a classroom's or viewer's join, false for the
	// teacher and for publishing.
	Allowed func(r *http.Request) bool
	// Prepare runs before this node serves, as an edge, a request for a
	// lesson another node owns: it makes the local mirror of the lesson
	// exist. An error answers 503.
	Prepare func(ctx context.Context, lesson string, owner NodeInfo) error
}

// RelayWithEdges is Relay where requests edges.Allowed accepts are placed
// with PlaceEdge: they go to the node of the client's region (or a less
// loaded one when the owner is full), which mirrors the lesson from its
// owner.
func (r *Registry) RelayWithEdges(next http.Handler, lessonOf LessonFunc, edges Edges) http.Handler {
	var proxies sync.Map // owner URL -> *httputil.ReverseProxy
	self := r.cfg.Node.ID
	count := func(result string) {
		if r.m != nil {
			r.m.forwarded.WithLabelValues(result).Inc()
		}
	}
	edgeOK := func(req *http.Request) bool { return edges.Allowed != nil && edges.Allowed(req) }
	// serveHere serves a lesson request on this node, first making the
	// lesson's mirror when this node serves it as an edge.
	serveHere := func(w http.ResponseWriter, req *http.Request, lesson string) {
		if edges.Prepare != nil && edgeOK(req) {
			owner, ok, err := r.Owner(req.Context(), lesson)
			if err == nil && ok && owner.ID != self {
				if err := edges.Prepare(req.Context(), lesson, owner); err != nil {
					r.log.Warn("cluster: preparing edge failed", "lesson", lesson, "owner", owner.ID, "err", err)
					httpx.WriteError(w, http.StatusServiceUnavailable, "edge_unavailable", "this node cannot relay the lesson now; retry shortly")
					return
				}
			}
		}
		next.ServeHTTP(w, req)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		lesson, ok := lessonOf(req)
		if !ok {
			next.ServeHTTP(w, req)
			return
		}
		if req.Header.Get(ForwardedByHeader) != "" {
			serveHere(w, req, lesson)
			return
		}
		region := req.Header.Get(RegionHeader)
		if region == "" {
			region = req.URL.Query().Get("region")
		}
		place := r.Place
		if edgeOK(req) {
			place = r.placeEdgeHere
		}
		owner, err := place(req.Context(), lesson, region)
		if err != nil {
			if errors.Is(err, ErrNoNodes) {
				// Not even this node is registered yet (first heartbeat
				// pending): serving here is the only answer.
				next.ServeHTTP(w, req)
				return
			}
			r.log.Warn("cluster placement failed; serving locally", "lesson", lesson, "err", err)
			count("local_fallback")
			next.ServeHTTP(w, req)
			return
		}
		if owner.ID == self {
			serveHere(w, req, lesson)
			return
		}
		p, ok := proxies.Load(owner.URL)
		if !ok {
			target, err := url.Parse(owner.URL)
			if err != nil || target.Scheme == "" || target.Host == "" {
				r.log.Error("owner node has a bad url", "owner", owner.ID, "url", owner.URL)
				count("error")
				httpx.WriteError(w, http.StatusBadGateway, "owner_unreachable", "the node serving this lesson is misconfigured")
				return
			}
			p, _ = proxies.LoadOrStore(owner.URL, r.newProxy(target))
		}
		count("relayed")
		r.log.Debug("relaying to lesson owner", "lesson", lesson, "owner", owner.ID, "path", req.URL.Path)
		p.(*httputil.ReverseProxy).ServeHTTP(w, req)
	})
}

func (r *Registry) newProxy(target *url.URL) *httputil.ReverseProxy {
	self := r.cfg.Node.ID
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			// Keep the Host the client used: the owner builds URLs
			// (WHIP Location) relative to it.
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(ForwardedByHeader, self)
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			r.log.Warn("relay to lesson owner failed", "owner", target.String(), "path", req.URL.Path, "err", err)
			if r.m != nil {
				r.m.forwarded.WithLabelValues("error").Inc()
			}
			httpx.WriteError(w, http.StatusBadGateway, "owner_unreachable", "the node serving this lesson did not answer; retry shortly")
		},
	}
}
