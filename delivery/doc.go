// Package delivery sends DefectDojo notification webhooks over HTTP and
// classifies each attempt for DefectDojo's endpoint state machine.
//
// A [Client] POSTs one [Request] (the event body byte for byte, with the
// User-Agent, X-DefectDojo-Event, X-DefectDojo-Instance, Accept, Content-Type,
// webhook-id and optional auth headers) and returns a [Result]: the outcome
// [Class], the HTTP status, DefectDojo's note text, the duration and, for a
// 429 or 503, the Retry-After time. Send never returns an error; every failure
// is a classified Result.
//
// Classes follow DefectDojo: 2xx is [Success]; 5xx, 429 and timeouts are
// [Temporary]; every other status (3xx, 4xx but 429) and every non-HTTP error
// (invalid URL, DNS failure, connection refused or reset, TLS error, refused
// destination) is [Permanent]. A cancelled caller context is [Temporary].
//
// Signatures (Standard Webhooks v1): when [Request.Secrets] is non-empty, Send
// adds webhook-timestamp (Unix seconds of the attempt, from [Options.Now],
// default time.Now) and webhook-signature ("v1,<base64 HMAC-SHA256 of
// id.timestamp.body>", one per secret, in order, space-separated); these three
// headers are set after the record's extra header, which cannot override them.
// Every Send signs anew, so a retry carries a new timestamp. A secret is
// [SecretPrefix] + base64 of [MinSecretBytes] to [MaxSecretBytes] key bytes
// ([GenerateSecret] makes [SecretBytes]-byte ones); a signed request without
// webhook-id, or with an invalid secret, is a Permanent "Invalid request"
// without any send. [Sign] and [Verify] do the same outside a Client; Verify
// accepts keys of any non-empty length and a timestamp at most
// [DefaultTolerance] (5 min) from now unless told otherwise. Secrets are never
// put in a note or error.
//
// Retry-After: [Result.RetryAfter] is the time a 429 or 503 response asked to
// wait until (delta-seconds or HTTP date), zero when absent, unparseable or
// not in the future; the class and note do not change. It is not capped: the
// caller bounds it (an endpoint may ask for years).
//
// Safe destinations: with [Options.BlockPrivate] (off by default: DefectDojo
// receivers are often internal) Send resolves the host itself
// ([Options.Resolver], default net.DefaultResolver) and refuses loopback,
// private (RFC 1918, fc00::/7), link-local, unspecified, "this network"
// (0.0.0.0/8), multicast, CGNAT (100.64.0.0/10) and reserved (240.0.0.0/4)
// addresses, also in IPv4-mapped and NAT64 (64:ff9b::/96) form, unless they are
// in [Options.AllowNetworks]. It then dials the checked address itself (never
// the name again, so DNS rebinding cannot get around the check), trying the
// allowed addresses in order, and the dialer's Control function checks the
// address once more before connecting. A refused destination is a Permanent
// failure whose note says why ("Destination refused: 127.0.0.1 is a loopback
// address (allow it with DOJO_WEBHOOKS_ALLOW_NETWORKS)"); its Err matches
// [ErrDestinationRefused]. With BlockPrivate, proxies from the environment are
// NOT used (the check must see the real destination) and [Options.DialContext],
// if set, is given checked "ip:port" addresses only.
//
// TLS: [Options.RootCAs] (e.g. from [LoadCAFile]: the system roots plus a PEM
// file) is trusted when [Options.TLSConfig] is nil or has no RootCAs.
//
// Limits: each attempt has a whole-exchange timeout (default 10 s,
// [DefaultTimeout]); at most 64 KiB of the response body is read and
// discarded (a larger response closes the connection instead of draining it);
// notes are capped at 1000 characters ([MaxNoteLength]) and never contain the
// auth header's value; redirects are not followed (a 3xx is permanent and its
// Location is put in the note). Proxies from the environment (HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY) are honoured, as DefectDojo's requests library does,
// unless BlockPrivate is on.
// All requests of a Client share one keep-alive connection pool; a request that
// meets a keep-alive connection the server has just closed is sent once more on
// a new connection (so the receiver may see it twice, with the same webhook-id
// and, when signed, the same timestamp and signature).
package delivery
