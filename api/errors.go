package api

import (
	"encoding/json"
	"net/http"
	"strings"
)

// maxErrorLength bounds the one-line error of an answer.
const maxErrorLength = 300

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers status with {"error": "one line"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": oneLine(msg)})
}

// oneLine folds white space and cuts a message to maxErrorLength characters.
func oneLine(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > maxErrorLength {
		msg = string(r[:maxErrorLength]) + "…"
	}
	return msg
}

// oneLineError is err's message as one line.
func oneLineError(err error) string { return oneLine(err.Error()) }
