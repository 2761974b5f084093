package delivery_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

func TestSendRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("after"); v != "" {
			w.Header().Set("Retry-After", v)
		}
		code, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(code)
	})
	c := delivery.New(delivery.Options{Now: func() time.Time { return now }})
	inAnHour := now.Add(time.Hour)
	tests := []struct {
		name   string
		status int
		after  string
		want   time.Time
	}{
		{"429 seconds", 429, "120", now.Add(2 * time.Minute)},
		{"503 seconds", 503, "30", now.Add(30 * time.Second)},
		{"429 HTTP date", 429, inAnHour.Format(http.TimeFormat), inAnHour},
		{"503 HTTP date", 503, inAnHour.Format(http.TimeFormat), inAnHour},
		{"429 garbage", 429, "in a while", time.Time{}},
		{"429 negative", 429, "-10", time.Time{}},
		{"503 past date", 503, now.Add(-time.Hour).Format(http.TimeFormat), time.Time{}},
		{"429 absent", 429, "", time.Time{}},
		{"500 ignored", 500, "120", time.Time{}},
		{"502 ignored", 502, "120", time.Time{}},
		{"200 ignored", 200, "120", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := srv.URL + "/?status=" + strconv.Itoa(tt.status) + "&after=" + url.QueryEscape(tt.after)
			res := c.Send(t.Context(), delivery.Request{URL: u, Event: "ping"})
			if !res.RetryAfter.Equal(tt.want) {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tt.want)
			}
			wantClass, wantNote := delivery.Classify(tt.status, nil)
			if res.Class != wantClass || res.Note != wantNote || res.StatusCode != tt.status {
				t.Errorf("got (%v, %d, %q), want (%v, %d, %q): Retry-After changes nothing else", res.Class, res.StatusCode, res.Note, wantClass, tt.status, wantNote)
			}
		})
	}
}
