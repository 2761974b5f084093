// Package logtest is a log sink for tests: the sidecar's zerolog output,
// written from many goroutines, read back as text or as its JSON lines.
package logtest

import (
	"bytes"
	"encoding/json"
	"sync"
)

// Buffer is a goroutine-safe io.Writer that keeps everything written to it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Entries returns the lines written so far that are JSON objects (log events).
func (b *Buffer) Entries() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(b.b.Bytes(), []byte("\n")) {
		var e map[string]any
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}
