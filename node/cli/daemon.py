"""``meshhub agent`` started without click: the daemon's command line, parsed by hand.

The agent runs on every node for as long as the node is up, so what it imports
stays in its memory for good; click (with what it pulls in) is about 1 MB of
it. The daemon's command line is fixed (the systemd unit and the lab start
``meshhub --config FILE agent``), so :func:`agent_options` recognises exactly
the forms the click group accepts for it: ``-c``/``--config`` (``-cFILE``,
``--config=FILE``), ``-v``/``--verbose`` (repeatable, ``-vv``), then
``agent`` with nothing after it. Anything else (``--help``, ``--version``, an
unknown option, a folder given as the config) returns None and goes to click,
which explains the mistake as before. The errors a person can meet print the
same lines as :func:`node.cli.base.run_cli`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from node.frozen import frozen

#: The only subcommand started this way.
AGENT = "agent"
#: The agent's loggers whose INFO lines reach the journal without ``-v``: the agent's own
#: start and stop, the gate's ruleset loaded before the access point opens, the updater's
#: steps. A few lines per start or update, none about residents (the gate's per-phone
#: lines are ``meshhub.gate``'s, which stays at WARNING).
JOURNAL_LOGGERS = ("meshhub.agent", "meshhub.update")


@frozen
class AgentOptions:
    """What ``meshhub [options] agent`` asked for."""

    config_path: str | None
    verbose: int


def agent_options(argv: Sequence[str]) -> AgentOptions | None:
    """``argv`` (without the program name) as the daemon's command line, or None when it
    is anything else (then click parses it, and explains a mistake)."""
    config_path: str | None = None
    verbose = 0
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == AGENT:
            break
        if arg in ("-c", "--config"):
            if not args:
                return None
            config_path = args.pop(0)
        elif arg.startswith("--config="):
            config_path = arg.removeprefix("--config=")
        elif arg.startswith("-c") and not arg.startswith("--"):
            config_path = arg[2:]
        elif arg == "--verbose":
            verbose += 1
        elif len(arg) > 1 and arg.strip("v") == "-":
            verbose += len(arg) - 1
        else:
            return None
    else:
        return None  # no subcommand
    if args:
        return None  # ``agent --help`` and the like
    if config_path == "":
        return None
    config_path = config_path or os.environ.get("MESHHUB_CONFIG") or None
    if config_path is not None and os.path.isdir(config_path):
        return None  # click's Path(dir_okay=False) names the problem
    return AgentOptions(config_path, verbose)


def run_agent(options: AgentOptions, prog: str = "meshhub") -> None:
    """Run the agent until SIGTERM or Ctrl-C and exit: what ``meshhub agent`` does, with
    the same messages and exit statuses as the click group's runner.

    The process is set up first (:func:`node.runtime.agent_process`): its optimisation
    level is kept from its children."""
    from node.runtime import agent_process

    agent_process()
    from node.cli.output import configure_logging, error_lines
    from node.errors import NodeError

    configure_logging(options.verbose)
    for name in JOURNAL_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        from node.agent import Agent, systemd_listen_socket
        from node.config import find_config, load_config

        cfg = load_config(find_config(options.config_path))
        Agent(cfg, listen_socket=systemd_listen_socket()).run()
    except KeyboardInterrupt:
        print(f"{prog}: stopped", file=sys.stderr)
        sys.exit(130)
    except (NodeError, OSError) as exc:
        if os.environ.get("MESHHUB_DEBUG"):
            raise
        print("\n".join(error_lines(prog, exc)), file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
