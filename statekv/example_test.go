package statekv_test

import (
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// An active endpoint answers 500: DefectDojo's state machine makes it
// inactive_tmp, opens the outage and schedules its reactivation.
func ExampleTransition() {
	now := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	rec := statekv.Record{
		ID:     "sec-alerts",
		Name:   "Security alerts",
		URL:    "https://hooks.example.com/dojo",
		Status: statekv.StatusActive,
	}
	policy := statekv.DefaultPolicy()

	next, changed := statekv.Transition(rec, statekv.Event{Input: statekv.TemporaryFailure, Note: "Response status code: 500"}, now, policy)
	fmt.Println("changed:", changed)
	fmt.Println("status:", rec.Status, "→", next.Status)
	fmt.Println("first_error:", next.FirstError.Format(time.RFC3339))
	fmt.Println("last_error:", next.LastError.Format(time.RFC3339))
	fmt.Println("note:", next.Note)

	due, timer, _ := statekv.NextTimer(next, policy)
	fmt.Println("next:", timer, "at", due.Format(time.RFC3339))
	// Output:
	// changed: true
	// status: active → inactive_tmp
	// first_error: 2025-03-14T12:00:00Z
	// last_error: 2025-03-14T12:00:00Z
	// note: Response status code: 500
	// next: reactivate_timer at 2025-03-14T12:01:00Z
}
