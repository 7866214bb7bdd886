#!/usr/bin/env bash
# Prepares this host for tracing: installs bpftrace (Debian/Ubuntu) and mounts
# tracefs/debugfs when they are missing. Idempotent; needs root. Both README
# quick-start commands start with it.
set -euo pipefail

say() { echo "setup-host: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "not root: skipping installs and mounts (tracing needs root or CAP_BPF+CAP_PERFMON)"
    exit 0
fi

if ! command -v bpftrace >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing bpftrace"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null >/dev/null
        apt-get install -y -qq bpftrace </dev/null >/dev/null
    else
        say "bpftrace is missing and this is not a Debian-like host: install bpftrace with your package manager"
    fi
fi

if [ ! -e /sys/kernel/tracing/uprobe_events ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || say "could not mount tracefs on /sys/kernel/tracing"
fi
if [ ! -e /sys/kernel/debug/tracing ] && [ -d /sys/kernel/debug ]; then
    mount -t debugfs nodev /sys/kernel/debug 2>/dev/null || say "could not mount debugfs on /sys/kernel/debug"
fi

if command -v bpftrace >/dev/null 2>&1; then
    say "ready: $(bpftrace --version 2>/dev/null)"
fi
