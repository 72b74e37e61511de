package maildir

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestConcurrentDeletes: the store is safe for concurrent use across
// mailboxes, and Maildir++ deletes all pass through one "..DOVECOT-TRASH"
// directory (as in Dovecot); they must not fight over it.
func TestConcurrentDeletes(t *testing.T) {
	ctx := context.Background()
	loc, _ := formats.ParseLocation("maildir:"+t.TempDir(), formats.Vars{})
	st, err := Driver{}.Open(ctx, loc, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 16
	for i := range n {
		if err := st.Create(ctx, fmt.Sprint("Box", i), formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- st.Delete(ctx, fmt.Sprint("Box", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Delete: %v", err)
		}
	}
	boxes, err := st.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if b.Name != "INBOX" {
			t.Errorf("%q survived its Delete", b.Name)
		}
	}
}
