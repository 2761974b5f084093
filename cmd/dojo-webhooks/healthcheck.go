package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// healthcheckTimeout bounds `dojo-webhooks healthcheck` (the image's HEALTHCHECK).
const healthcheckTimeout = 3 * time.Second

var healthcheckCmd = &command{
	name:    "healthcheck",
	summary: "exit 0 when the local sidecar's /healthz answers (the image's HEALTHCHECK)",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		if err := noArgs("healthcheck", pos); err != nil {
			return err
		}
		return healthcheck(ctx, c.cfg)
	}),
}

// healthcheck asks the local sidecar's /healthz; the image has no shell or curl.
func healthcheck(ctx context.Context, cfg Config) error {
	if cfg.HTTPAddr == "off" {
		return usageError{fmt.Errorf("healthcheck: DOJO_WEBHOOKS_HTTP_ADDR is off")}
	}
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return usageError{fmt.Errorf("healthcheck: DOJO_WEBHOOKS_HTTP_ADDR %q: %w", cfg.HTTPAddr, err)}
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)
	}
	return nil
}
