// Package delivery sends DefectDojo notification webhooks over HTTP and
// classifies each attempt for DefectDojo's endpoint state machine.
//
// A [Client] POSTs one [Request] (the event body byte for byte, with the
// User-Agent, X-DefectDojo-Event, X-DefectDojo-Instance, Accept, Content-Type,
// webhook-id and optional auth headers) and returns a [Result]: the outcome
// [Class], the HTTP status, DefectDojo's note text and the duration. Send
// never returns an error; every failure is a classified Result.
//
// Classes follow DefectDojo: 2xx is [Success]; 5xx, 429 and timeouts are
// [Temporary]; every other status (3xx, 4xx but 429) and every non-HTTP error
// (invalid URL, DNS failure, connection refused or reset, TLS error) is
// [Permanent]. A cancelled caller context is [Temporary].
//
// Limits: each attempt has a whole-exchange timeout (default 10 s,
// [DefaultTimeout]); at most 64 KiB of the response body is read and
// discarded (a larger response closes the connection instead of draining it);
// notes are capped at 1000 characters ([MaxNoteLength]) and never contain the
// auth header's value; redirects are not followed (a 3xx is permanent and its
// Location is put in the note). Proxies from the environment (HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY) are honoured, as DefectDojo's requests library does.
// All requests of a Client share one keep-alive connection pool; a request that
// meets a keep-alive connection the server has just closed is sent once more on
// a new connection (so the receiver may see it twice, with the same webhook-id).
package delivery
