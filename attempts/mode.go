package attempts

import "fmt"

// Mode says which attempts are recorded (DOJO_WEBHOOKS_ATTEMPTS).
type Mode string

// The recording modes.
const (
	ModeAll      Mode = "all"      // every attempt (the default)
	ModeFailures Mode = "failures" // failed attempts only
	ModeOff      Mode = "off"      // none: the log is not written
)

// DefaultMode records every attempt.
const DefaultMode = ModeAll

// ParseMode checks a mode's name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAll, ModeFailures, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("%q: must be all, failures or off", s)
}

// records reports whether an attempt with that outcome is recorded in mode m.
func (m Mode) records(failed bool) bool {
	switch m {
	case ModeAll:
		return true
	case ModeFailures:
		return failed
	}
	return false
}
