package statekv_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestCreateUniqueRefusesATakenName: a second endpoint with a name in use is
// refused, naming the holder, and nothing is stored.
func TestCreateUniqueRefusesATakenName(t *testing.T) {
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	first := validRecord("jira")
	first.Name = "Jira bridge"
	if _, err := st.CreateUnique(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := validRecord("jira2")
	second.Name = "Jira bridge"
	_, err := st.CreateUnique(ctx, second)
	var taken *statekv.NameTakenError
	if !errors.Is(err, statekv.ErrNameTaken) || !errors.As(err, &taken) || taken.By != "jira" {
		t.Fatalf("CreateUnique with a taken name: %v, want ErrNameTaken by jira", err)
	}
	if _, err := st.Get(ctx, "jira2"); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("the refused record was stored: %v", err)
	}
	if _, err := st.CreateUnique(ctx, first); !errors.Is(err, statekv.ErrExists) {
		t.Errorf("CreateUnique with a taken id: %v, want ErrExists", err)
	}
	other := validRecord("other")
	if _, err := st.CreateUnique(ctx, other); err != nil {
		t.Errorf("CreateUnique with a free name: %v", err)
	}
}

// TestCreateUniqueConcurrentCreators: creators of one name racing on their own
// connections to one server: exactly one keeps its record, the others get
// ErrNameTaken naming it.
func TestCreateUniqueConcurrentCreators(t *testing.T) {
	s, kv := testBucket(t)
	const rounds, creators = 10, 3
	stores := make([]*statekv.Store, creators)
	for i := range stores {
		stores[i] = statekv.NewStore(bucketOn(t, s))
	}
	for round := range rounds {
		name := fmt.Sprintf("Shared %d", round)
		start := make(chan struct{})
		errs := make([]error, creators)
		var wg sync.WaitGroup
		for i := range creators {
			wg.Go(func() {
				rec := validRecord(fmt.Sprintf("r%d-%d", round, i))
				rec.Name = name
				<-start
				_, errs[i] = stores[i].CreateUnique(t.Context(), rec)
			})
		}
		close(start)
		wg.Wait()
		winner := ""
		for i, err := range errs {
			switch {
			case err == nil && winner == "":
				winner = fmt.Sprintf("r%d-%d", round, i)
			case err == nil:
				t.Fatalf("round %d: two creators kept %q: %s and r%d-%d", round, name, winner, round, i)
			case !errors.Is(err, statekv.ErrNameTaken):
				t.Fatalf("round %d: creator %d: %v, want nil or ErrNameTaken", round, i, err)
			}
		}
		if winner == "" {
			t.Fatalf("round %d: no creator kept %q: %v", round, name, errs)
		}
		for i, err := range errs {
			var taken *statekv.NameTakenError
			if err != nil && (!errors.As(err, &taken) || taken.By != winner) {
				t.Errorf("round %d: creator %d: %v, want the name taken by %s", round, i, err, winner)
			}
		}
		entries, _, err := statekv.NewStore(kv).List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var holders []string
		for _, e := range entries {
			if e.Record.Name == name {
				holders = append(holders, e.Record.ID)
			}
		}
		if len(holders) != 1 || holders[0] != winner {
			t.Fatalf("round %d: records named %q: %v, want [%s]", round, name, holders, winner)
		}
	}
}

// TestRotateSecret: the first secret has no overlap; a rotation keeps the
// previous secret signing until now+overlap.
func TestRotateSecret(t *testing.T) {
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Fatal(err)
	}
	first, second := secret(32), secret(33)
	e, err := st.RotateSecret(ctx, "ep", first, time.Hour, t0)
	if err != nil || e.Record.Secret != first || e.Record.PreviousSecret != "" || !e.Record.PreviousSecretUntil.IsZero() {
		t.Fatalf("first rotation: %+v, %v", e.Record, err)
	}
	e, err = st.RotateSecret(ctx, "ep", second, time.Hour, t0)
	if err != nil || e.Record.Secret != second || e.Record.PreviousSecret != first || !e.Record.PreviousSecretUntil.Equal(t0.Add(time.Hour)) {
		t.Fatalf("second rotation: %+v, %v", e.Record, err)
	}
	if got := getRecord(t, st, "ep").Record; got.Secret != second || got.PreviousSecret != first {
		t.Errorf("stored: secret %v previous %v", got.Secret == second, got.PreviousSecret == first)
	}
	if _, err := st.RotateSecret(ctx, "ep", "whsec_short", time.Hour, t0); !errors.Is(err, statekv.ErrInvalidRecord) {
		t.Errorf("rotation to an invalid secret: %v, want ErrInvalidRecord", err)
	}
	if _, err := st.RotateSecret(ctx, "missing", first, time.Hour, t0); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("rotation of a missing endpoint: %v, want ErrNotFound", err)
	}
}
