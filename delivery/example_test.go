package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

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

func ExampleVerify() {
	// A Go receiver checks a signed delivery (here the Standard Webhooks specification's example).
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	now := time.Unix(1614265330, 0).Add(30 * time.Second) // time.Now() in a real receiver

	fmt.Println(delivery.Verify([]string{secret}, h, body, now, 0))
	fmt.Println(delivery.Verify([]string{secret}, h, []byte(`{"test": 1}`), now, 0))
	fmt.Println(delivery.Verify([]string{secret}, h, body, now.Add(time.Hour), 0))
	// Output:
	// <nil>
	// webhook signature mismatch: none of 1 v1 signatures matches any of 1 secrets
	// invalid webhook timestamp: webhook-timestamp is 1h0m30s old, tolerance 5m0s
}
