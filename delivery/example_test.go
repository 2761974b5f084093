package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

func ExampleClient_Send() {
	// An endpoint that accepts pings and is down for everything else.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-DefectDojo-Event") == "ping" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	c := delivery.New(delivery.Options{}) // 10 s timeout, 64 KiB response read
	defer c.CloseIdle()
	for _, event := range []string{"ping", "product_added"} {
		res := c.Send(context.Background(), delivery.Request{
			URL:       srv.URL + "/hook",
			Event:     event,
			Body:      []byte(`{"description": "Test webhook notification", "title": "", "user": null}`),
			ID:        "events:1",
			UserAgent: "DefectDojo-2.40.0",
		})
		fmt.Printf("%s: %s %d %q\n", event, res.Class, res.StatusCode, res.Note)
	}
	// Output:
	// ping: success 200 ""
	// product_added: temporary 503 "Response status code: 503"
}
