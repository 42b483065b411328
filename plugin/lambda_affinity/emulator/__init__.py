"""The local Lambda emulator: a real-time driver of the platform model.

Modules, one responsibility each:
  config        YAML -> validated EmulatorConfig / FunctionConfig
  wire          minimal HTTP/1.1 server on gevent's StreamServer
  invoke_api    the Invoke API front end (AWS status codes, headers, error shapes)
  function_url  Function URLs: payload format 2.0 events, response conversion
  auth          the Function URL authorization hook
  network       the modelled client round trip in front of both front ends
  introspection read-only view of the environments
  runtime_api   the Runtime API (2018-06-01) served to each environment
  sandbox       an environment as an OS process: Lambda's variables, logs
  forkserver    starts and talks to the fork-server (runtimes/zygote.py)
  containment   make_undumpable(): function code cannot read this process (credentials)
  machine       the default cap on environments, derived from this machine
  invocation    an invocation, its results and AWS's error payloads, log lines
  service       runs invocations on environments placed by the platform model
  server        Emulator: ties the service to its front ends
  process       EmulatorProcess: `lambda-affinity emulate` as a child process
  cli           the `emulate` subcommand
"""

from __future__ import annotations


def __getattr__(name):
    # Lazy, so importing EmulatorProcess does not pull in gevent's servers.
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    if name == "EmulatorProcess":
        from .process import EmulatorProcess

        return EmulatorProcess
    if name in ("load_config", "default_config", "ConfigFileError"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)


__all__ = ["Emulator", "EmulatorProcess", "load_config", "default_config", "ConfigFileError"]
