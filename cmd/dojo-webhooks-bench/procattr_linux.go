package main

import "syscall"

// childProcAttr makes the nats-server child receive SIGTERM if the bench dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
