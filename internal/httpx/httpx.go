// Package httpx holds the few HTTP helpers every Podium API shares, so that
// every error a client sees has the same shape: {"error": "...", "code": "..."}.
package httpx

import (
	"encoding/json"
	"net/http"
)

// Error is the JSON body of every HTTP error Podium returns.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg, "code": code} with the given status.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, Error{Error: msg, Code: code})
}
