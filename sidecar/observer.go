package sidecar

import (
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/opsevents"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// observers calls each of its observers in turn.
type observers []consumer.Observer

// observe combines the non-nil observers into one; nil when there is none.
func observe(all ...consumer.Observer) consumer.Observer {
	var o observers
	for _, x := range all {
		if x != nil {
			o = append(o, x)
		}
	}
	switch len(o) {
	case 0:
		return nil
	case 1:
		return o[0]
	}
	return o
}

func (o observers) Delivered(endpoint, event string, res delivery.Result) {
	for _, x := range o {
		x.Delivered(endpoint, event, res)
	}
}

func (o observers) Transitioned(endpoint string, from, to statekv.Status) {
	for _, x := range o {
		x.Transitioned(endpoint, from, to)
	}
}

func (o observers) Dropped(endpoint string, count, first, last uint64) {
	for _, x := range o {
		x.Dropped(endpoint, count, first, last)
	}
}

// opsObserver passes the loss detection's reports to the operational events.
type opsObserver struct{ ops *opsevents.Publisher }

func (opsObserver) Delivered(string, string, delivery.Result)           {}
func (opsObserver) Transitioned(string, statekv.Status, statekv.Status) {}
func (opsObserver) DeadLettered(string)                                 {}
func (o opsObserver) Dropped(endpoint string, count, first, last uint64) {
	o.ops.ReportDropped(endpoint, count, first, last)
}

func (o observers) DeadLettered(endpoint string) {
	for _, x := range o {
		x.DeadLettered(endpoint)
	}
}
