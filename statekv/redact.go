package statekv

import (
	"net/url"
	"strings"
)

// redactedPassword replaces a URL's password, as net/url's URL.Redacted does.
const redactedPassword = "xxxxx"

// RedactURL returns raw with the password of its userinfo replaced by "xxxxx"
// (https://user:pass@host/ becomes https://user:xxxxx@host/), the form
// net/url's URL.Redacted gives and the logs and delivery notes already use. The
// user name stays, to tell two credentials apart; a URL without a password is
// returned unchanged. A text that does not parse as a URL (a record put by hand)
// is redacted by its shape: whatever sits between "scheme://user:" and the last
// "@" of the authority. Secrets in the path or query (a Slack hook's token) are
// part of the address and are not masked. Show a record's URL to people only
// through this: endpoint show, endpoint list (text and --json), status.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		if u.User != nil || !strings.Contains(raw, "@") {
			return raw
		}
	}
	return redactByShape(raw)
}

// RedactedURL is the record's URL with its password masked (see RedactURL).
func (r Record) RedactedURL() string { return RedactURL(r.URL) }

// redactByShape masks the password of "scheme://user:password@host…" without parsing the URL.
func redactByShape(raw string) string {
	start := strings.Index(raw, "://")
	if start < 0 {
		return raw
	}
	start += len("://")
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndex(raw[start:end], "@")
	if at < 0 {
		return raw
	}
	at += start
	colon := strings.Index(raw[start:at], ":")
	if colon < 0 {
		return raw
	}
	colon += start
	return raw[:colon+1] + redactedPassword + raw[at:]
}
