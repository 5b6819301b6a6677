#!/usr/bin/env python3
"""Checks a resolved compose configuration (`docker-compose config` on stdin)
against the binaries it runs.

* Every environment variable set on an app service (one built from the
  Dockerfile) must be an `[env: NAME]` of that binary's --help, for the
  subcommand the service runs, or be on ALLOWED_NON_FLAGS with a reason.
  A typo such as WORKER_PREFETCHH would otherwise be ignored silently.
* Every app command names a binary the Dockerfile puts in the image.
* No service talks to RabbitMQ as guest, and every AMQP_URL carries the
  dedicated user and password the rabbitmq service creates.
* Broker ports are published on 127.0.0.1 (the default of PUBLISH_ADDR).

Usage: docker-compose -f ... config | compose_env_check.py BIN_DIR DOCKERFILE
Exits 1 with one line per problem, naming the service and the variable.
"""

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

# Variables an app service may set that are not flags of the binary.
ALLOWED_NON_FLAGS = {
    # Read by tracing-subscriber's EnvFilter (core::telemetry::init_tracing),
    # not by clap: the log filter, deliberately not a flag.
    "RUST_LOG": "log filter read by tracing-subscriber's EnvFilter",
}

ENV_RE = re.compile(r"\[env:\s+([A-Za-z_][A-Za-z0-9_]*)")


def image_binaries(dockerfile):
    """Binaries the Dockerfile copies out of target/release."""
    text = open(dockerfile, encoding="utf-8").read()
    return set(re.findall(r"target/release/([A-Za-z0-9_-]+)", text))


def help_env_names(bin_dir, argv):
    """The env names clap lists in `argv --help`, run with an empty
    environment so no value (a password) is echoed into the help."""
    exe = os.path.join(bin_dir, argv[0])
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"compose env check: {exe} is missing; build the binaries first (cargo build --bins)")
    out = subprocess.run([exe, *argv[1:], "--help"], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"compose env check: `{' '.join(argv)} --help` failed: {out.stderr.strip()}")
    return set(ENV_RE.findall(out.stdout))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    bin_dir, dockerfile = sys.argv[1], sys.argv[2]
    config = yaml.safe_load(sys.stdin)
    services = config.get("services") or {}
    if not services:
        raise SystemExit("compose env check: no services in the configuration on stdin")
    shipped = image_binaries(dockerfile)
    problems = []
    checked = 0

    rabbit_env = (services.get("rabbitmq") or {}).get("environment") or {}
    rabbit_user = str(rabbit_env.get("TICKBRIDGE_RABBITMQ_USER", ""))
    rabbit_pass = str(rabbit_env.get("TICKBRIDGE_RABBITMQ_PASSWORD", ""))
    if not rabbit_user or not rabbit_pass:
        problems.append("service rabbitmq: TICKBRIDGE_RABBITMQ_USER / TICKBRIDGE_RABBITMQ_PASSWORD are not set")
    if rabbit_user == "guest":
        problems.append("service rabbitmq: the dedicated user must not be guest")

    for name in ("rabbitmq", "kafka"):
        for port in (services.get(name) or {}).get("ports") or []:
            text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            if not str(text).startswith("127.0.0.1:"):
                problems.append(f"service {name}: port {text} is published beyond 127.0.0.1 (set PUBLISH_ADDR on purpose only)")

    cache = {}
    for name, svc in sorted(services.items()):
        if "build" not in svc:
            continue  # a third-party image (the brokers)
        command = svc.get("command")
        if isinstance(command, str):
            command = command.split()
        if not command:
            problems.append(f"service {name}: no command; the tickbridge image has no default binary")
            continue
        binary = command[0]
        if binary not in shipped:
            problems.append(f"service {name}: runs {binary!r}, which the Dockerfile does not ship ({', '.join(sorted(shipped))})")
            continue
        argv = [binary] + [a for a in command[1:] if not a.startswith("-")][:1]
        key = tuple(argv)
        if key not in cache:
            cache[key] = help_env_names(bin_dir, argv)
        accepted = cache[key]
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        for var, value in sorted(env.items()):
            checked += 1
            if var not in accepted and var not in ALLOWED_NON_FLAGS:
                problems.append(f"service {name}: {var} is not a flag of `{' '.join(argv)}` "
                                f"(its --help lists no [env: {var}]) and is not on the allow-list")
            if var == "AMQP_URL":
                u = urlsplit(str(value))
                if u.username == "guest":
                    problems.append(f"service {name}: AMQP_URL logs in as guest")
                elif (u.username, u.password) != (rabbit_user, rabbit_pass):
                    problems.append(f"service {name}: AMQP_URL does not use the user and password the rabbitmq service creates")
    if problems:
        print("compose env check FAILED:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    print(f"compose env check: {checked} variables on {sum('build' in s for s in services.values())} app services are flags of their binaries")


if __name__ == "__main__":
    main()
