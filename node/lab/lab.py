"""The mesh lab: a neighbourhood of nodes in network namespaces on one Linux machine.

Each node ``nI`` is a namespace ``mhl-<lab id>-nI`` with its mesh address on ``lo``,
veth links ``m-nJ`` to its neighbours (babeld treats them as wired), an access-point
stand-in ``ap0`` carrying its client subnet (no radio exists in a namespace), and the
real processes of a node: the agent — which loads the nftables gate, starts and
supervises babeld and dnsmasq, follows babeld and announces the node with zeroconf —
and the portal (as ``nobody`` where it can be). With phones, ``ap0`` is a bridge and
each node has a phone namespace ``mhl-<id>-pI`` that gets its address from the node's
dnsmasq by DHCP (:mod:`node.lab.phones`). Nothing is linked to the host's own
namespace: no veth, route or NAT leaves the lab.

Everything the lab made is written to ``<state>/lab.json`` so that ``status``,
``exec``, ``cut``/``heal``, ``kill``/``revive`` and ``down`` work from any later
command. Requires root (namespaces), ``ip``, ``babeld``, ``dnsmasq``, ``nft``, ``curl``
(and ``busybox`` for phones, ``setpriv`` for an unprivileged portal).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.atomic import atomic_write
from node.errors import ConfigError
from node.lab import phones as phone_net
from node.lab.capacity import check_memory, slow_host_warning
from node.lab.netns import (
    NS_PREFIX,
    LabError,
    alive,
    ip_batch,
    kill_namespace,
    lab_namespaces,
    reap,
    run,
    sysctls,
)
from node.lab.nodeconf import (
    AGENT_PORT,
    PORTAL_PORT,
    UMASK,
    choose_portal_user,
    node_toml,
    share_with_portal,
)
from node.lab.probe import http_get
from node.lab.topology import links as topology_links
from node.net.mesh_sae import KEY_FILE_NAME as MESH_KEY_FILE
from node.roam.keys import SECRET_FILE_NAME as ROAM_SECRET_FILE
from node.runtime import (
    agent_environment,
    byte_compile_for_portal,
    portal_code_folders,
    portal_environment,
)

_log = logging.getLogger("meshhub.lab")

__all__ = ["AGENT_PORT", "NS_PREFIX", "PORTAL_PORT", "STATE_FILE", "STATE_ROOT", "LabError",
           "LabNode", "LabState", "MeshLab", "find_lab", "lab_namespaces", "node_toml"]

#: Where labs keep their state when no --state is given.
STATE_ROOT = Path("/run/meshhub-lab")
STATE_FILE = "lab.json"
#: Tools every lab needs, with their Debian package.
TOOLS = {"ip": "iproute2", "babeld": "babeld", "dnsmasq": "dnsmasq-base", "nft": "nftables",
         "curl": "curl"}
#: The lab's timing choices (``lab up --timings``): see :attr:`LabState.timings`.
TIMINGS = ("lab", "defaults")
#: Parallel checks while waiting (each a thread that enters the node's namespace).
CHECK_WORKERS = 8
#: Agents starting at once, per processor: a Python agent takes about a second of
#: processor time to start, and 200 started together starve each other and babeld.
STARTING_PER_CPU = 3
#: Seconds between two looks while waiting (files and quick HTTP checks).
CHECK_PAUSE_SECONDS = 0.25
#: babeld's hello interval in a radio lab unless told otherwise: babeld's own default for
#: a wireless interface (and node.toml's ``mesh.hello_interval``). At the cabled lab's 1 s,
#: a 5-node radio line in a TCG virtual machine never converged (841 s): each hello wakes
#: babeld and the agent's monitor in every node, the guest fell behind, and babeld counted
#: hellos as missed before they arrived ("Late hello: bufferbloated neighbor").
RADIO_HELLO_INTERVAL = 4.0
#: Portals a radio lab starts at once per processor, after its routes (see :meth:`MeshLab.up`).
PORTALS_STARTING_PER_CPU = 1
#: Each role's log, in the node's folder.
LOGS = {"agent": "agent.log", "portal": "portal.log", "babeld": "run/babeld.log"}


@dataclass
class LabNode:
    """One node of the lab, the processes it runs and its phone's lease."""

    name: str
    number: int
    ns: str
    mesh_address: str
    config: str
    pids: dict[str, int] = field(default_factory=dict)
    phone_ns: str = ""
    phone_lease: dict[str, str] = field(default_factory=dict)
    #: The node whose access point the phone is on now (its own unless moved).
    phone_at: str = ""
    #: Radio labs: the node's simulated radios (``phyN``), the one its mesh point is on,
    #: and the MAC addresses of its access point and mesh point.
    radios: list[str] = field(default_factory=list)
    mesh_phy: str = ""
    ap_mac: str = ""
    mesh_mac: str = ""

    @property
    def portal_address(self) -> str:
        """The node's address on its access point (router, DNS and portal for phones)."""
        return f"10.64.{self.number}.1"


@dataclass
class LabPhone:
    """A phone of a radio lab, or one added with ``lab phone add``: its namespace, the node
    it belongs to, its radio and the ``wpa_supplicant`` running it."""

    name: str
    node: str
    ns: str
    phy: str = ""
    mac: str = ""
    pid: int = 0
    lease: dict[str, str] = field(default_factory=dict)


@dataclass
class LabState:
    """What ``lab.json`` records."""

    id: str
    state_dir: str
    topology: str
    hello_interval: float
    nodes: dict[str, LabNode]
    links: list[tuple[str, str]]
    portal: bool = True
    started: float = 0.0
    portal_user: str = "root"
    #: Radio labs (``lab up --radio``, :mod:`node.lab.radio`): radios per node, the channel,
    #: whether this lab loaded mac80211_hwsim, links cut over the air, degraded links
    #: (``[a, b, loss percent, delay ms]``) and every phone with a radio or added later.
    radio: bool = False
    radios_per_node: int = 1
    channel: int = 1
    cut: list[tuple[str, str]] = field(default_factory=list)
    degraded: list[list[object]] = field(default_factory=list)
    phones: dict[str, LabPhone] = field(default_factory=dict)
    #: ``lab``: quicker health samples (5 s) and sync rounds (10 s) than a real node;
    #: ``defaults``: a real node's defaults (``lab up --timings defaults``, bench/scale.py).
    timings: str = "lab"
    #: Nodes cabled to the lab's isp namespace (``lab up --uplinks``, :mod:`node.lab.uplinks`)
    #: and the pids of the isp's web server and resolver.
    uplinks: dict[str, int] = field(default_factory=dict)  #: name: clients.uplink_cost
    isp_pids: list[int] = field(default_factory=list)

    @property
    def ns_prefix(self) -> str:
        """The start of every namespace (and radio) name of this lab: ``mhl-ID-``."""
        return f"{NS_PREFIX}{self.id}-"

    def save(self) -> None:
        """Write ``lab.json`` atomically."""
        data = asdict(self)
        atomic_write(Path(self.state_dir) / STATE_FILE, json.dumps(data, indent=1), mode=0o600)

    @classmethod
    def load(cls, state_dir: Path) -> LabState:
        """Read a lab's ``lab.json``."""
        path = state_dir / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LabError(f"{path}: no lab here; start one with 'meshhub lab up'") from None
        except ValueError as exc:
            raise LabError(f"{path}: damaged lab state ({exc}); remove the lab's namespaces "
                           f"('ip netns list | grep {NS_PREFIX}') and delete the folder"
                           ) from None
        data["nodes"] = {k: LabNode(**v) for k, v in data["nodes"].items()}
        data["links"] = [tuple(pair) for pair in data["links"]]
        data["cut"] = [tuple(pair) for pair in data.get("cut", [])]
        data["phones"] = {k: LabPhone(**v) for k, v in data.get("phones", {}).items()}
        return cls(**data)


def find_lab(state: str | None = None, lab_id: str | None = None,
             root: Path = STATE_ROOT) -> Path:
    """The state folder of the lab meant: ``--state``, ``--lab ID``, or the only one."""
    if state:
        return Path(state)
    if lab_id:
        return root / lab_id
    found = sorted(p.parent for p in root.glob(f"*/{STATE_FILE}")) if root.exists() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise LabError("no lab is running; start one with 'meshhub lab up'")
    raise LabError("several labs are running (" + ", ".join(p.name for p in found) +
                   "); choose one with --lab ID")


def _program(name: str) -> list[str]:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    module, entry = {"meshhub": ("node.cli", "main"),
                     "meshhub-portal": ("portal.cli", "program")}[name]
    return [sys.executable, "-c", f"from {module} import {entry}; {entry}()"]


def _as_portal_user(user: str) -> list[str]:
    """The command prefix that runs a program as the lab's portal user."""
    if user == "root":
        return []
    import pwd

    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]


def _compile_for_portal(user: str) -> None:
    """Byte-compile, as root, the code the lab's portals and agents import at their
    optimisation level (the same: node/runtime.py).

    The portals run as ``nobody`` where they can, who may not write ``*.opt-2.pyc`` files
    into the checkout, the venv or the standard library; without them every portal and
    agent would compile all its modules from source at every start (a second of
    processor time each, which 200 agents starting together feel). Once per ``lab up``,
    and compileall skips what is up to date (about 0.5 s then).
    """
    try:
        packages, stdlib = portal_code_folders(_as_portal_user(user))
        byte_compile_for_portal(sys.executable, packages, stdlib=stdlib)
    except subprocess.CalledProcessError as exc:
        raise LabError(f"byte-compiling the portal's code failed ({' '.join(exc.cmd)}):\n"
                       f"{exc.stdout}{exc.stderr}") from None


def _check_tools(phones: bool, portal_user: str) -> None:
    needed = dict(TOOLS)
    if phones:
        needed["busybox"] = "busybox (udhcpc)"
    if portal_user != "root":
        needed["setpriv"] = "util-linux"
    for tool, package in needed.items():
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs '{tool}' (Debian package: {package})")


class MeshLab:
    """Create, inspect, disturb and remove one lab; every method re-reads nothing but
    :attr:`state`, which lives in ``<state_dir>/lab.json``."""

    def __init__(self, state: LabState) -> None:
        self.state = state

    # --- building ------------------------------------------------------------

    @classmethod
    def up(cls, nodes: int, topology: str = "line", *, seed: int = 0,
           lab_id: str | None = None, state_dir: Path | None = None, phones: bool = False,
           hello_interval: float | None = None, portal: bool = True, wait: float = 60.0,
           untrusted: tuple[str, ...] = (), portal_user: str | None = None,
           radio: bool = False, radios: int = 1, timings: str = "lab",
           uplinks: dict[str, int] | None = None,
           warn: Callable[[str], None] | None = None) -> MeshLab:
        """Build the lab and start every node; on any failure remove what was made.

        ``untrusted`` names nodes whose keys the others do not list in ``trust.node_keys``
        (a node the community never registered). ``portal_user``: who runs the portals
        (default ``nobody`` when it can reach the state folder, else ``root``).
        With ``phones`` every node gets a phone that takes a DHCP lease once the node is
        ready (``wait`` must then be non-zero).
        ``radio``: every node and phone gets simulated radios instead of cables
        (:mod:`node.lab.radio_nodes`; ``radios`` per node, 1 or 2).
        ``hello_interval``: babeld's, on the lab's links; default 1 s on cables and
        :data:`RADIO_HELLO_INTERVAL` over the air. A radio lab starts its portals only once
        babeld routes to every node, a few at a time, and checks the routes again after.
        ``timings``: ``lab`` (health samples every 5 s, sync rounds every 10 s) or
        ``defaults`` (a real node's ``node.toml`` defaults).
        ``uplinks`` names nodes cabled to the lab's "internet", an isp namespace with a
        web server (:mod:`node.lab.uplinks`), each with its ``clients.uplink_cost`` (0: a
        main uplink); they announce a default route to the mesh while their agent's
        check finds the uplink working.
        Refused up front when the nodes would not fit in memory (:func:`check_memory`);
        ``warn`` is told when this machine looks too slow for ``hello_interval``. The
        agents start a few at a time (:meth:`start_agents`); a node that never becomes
        ready is named with its last log line, and the lab is removed.
        """
        if hello_interval is None:
            hello_interval = RADIO_HELLO_INTERVAL if radio else 1.0
        if timings not in TIMINGS:
            raise ConfigError([f"--timings: {timings!r} must be one of {', '.join(TIMINGS)}"])
        if radio:
            from node.lab.radio import check_radio_host
            from node.lab.radio_nodes import radios_needed

            if radios not in (1, 2):
                raise ConfigError([f"--radios: {radios} must be 1 (access point and mesh on "
                                   "one radio) or 2 (one each)"])
            if not wait:
                raise ConfigError(["--wait: a radio lab opens its nodes' peer links once "
                                   "they run, so it waits for them; give --wait more than 0"])
            check_radio_host(radios_needed(nodes, radios, phones))
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces); run it with sudo")
        if not 1 <= nodes <= 200:
            raise ConfigError([f"--nodes: {nodes} must be between 1 and 200"])
        check_memory(nodes, portal, phones)
        slow = slow_host_warning(nodes, hello_interval)
        if slow:
            (warn or _log.warning)(slow)
        uplinks = dict(uplinks or {})
        unknown = [n for n in uplinks if n not in {f"n{i}" for i in range(1, nodes + 1)}]
        if unknown or (uplinks and radio):
            raise ConfigError([f"--uplinks: {', '.join(unknown)} not among n1..n{nodes}"
                               if unknown else "--uplinks: only in a lab without radios"])
        lab_id = lab_id or secrets.token_hex(3)
        folder = state_dir or STATE_ROOT / lab_id
        if (folder / STATE_FILE).exists():
            raise LabError(f"{folder}: a lab is already there; 'meshhub lab down' it first")
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        user = choose_portal_user(folder, portal_user) if portal else "root"
        _check_tools(phones, user)
        pairs = topology_links(nodes, topology, seed)
        _compile_for_portal(user)  # the agents' code too, with or without portals
        lab_nodes = {f"n{i}": LabNode(f"n{i}", i, f"{NS_PREFIX}{lab_id}-n{i}",
                                      f"10.42.{i // 256}.{i % 256}",
                                      str(folder / f"n{i}" / "node.toml"))
                     for i in range(1, nodes + 1)}
        state = LabState(lab_id, str(folder), topology, hello_interval, lab_nodes,
                         [(f"n{a}", f"n{b}") for a, b in pairs], portal, time.time(), user,
                         radio=radio, radios_per_node=radios, timings=timings,
                         uplinks=uplinks)
        lab = cls(state)
        state.save()
        mark = time.monotonic()

        def took(what: str) -> None:  # where a slow machine's time goes (lab up -v)
            nonlocal mark
            _log.info("lab %s: %s in %.1f s", lab_id, what, time.monotonic() - mark)
            mark = time.monotonic()

        try:
            if radio:
                lab._build_radio(phones, set(untrusted))
            else:
                lab._build(phones, set(untrusted))
                if uplinks:
                    from node.lab.uplinks import build_isp

                    build_isp(lab)
            took("built")
            if wait:
                started = time.monotonic()
                lab.start_agents(wait)  # agents first: their babelds start sooner
                took("agents up")
                remaining = max(1.0, wait - (time.monotonic() - started))
                if radio:
                    from node.lab.radio_nodes import wait_access_points

                    wait_access_points(lab, remaining)
                    took("access points on")
                    remaining = max(1.0, wait - (time.monotonic() - started))
                    from node.lab.peering import wait_peers

                    wait_peers(lab, remaining)
                    took("peer links between neighbours")
                    remaining = max(1.0, wait - (time.monotonic() - started))
                lab.wait_ready(remaining, start_portals=True, portals_after_routes=radio)
                took("agents answering, routes to every node and portals answering")
                if phones:
                    lab.connect_phones()
                    took("phones associated and leased")
            else:
                lab.start_all()
        except LabError as exc:
            # Stopped, but its files stay: the error names logs inside the state folder.
            lab.down(keep_files=True)
            raise LabError(f"{exc}; the lab was stopped, its files are kept in {folder} "
                           "(delete that folder when done)") from None
        except BaseException:
            lab.down()
            raise
        return lab

    def _build(self, phones: bool, untrusted: set[str]) -> None:
        from node.identity import load_or_create_identity

        st = self.state
        keys = {}
        roam_secret = secrets.token_hex(32)
        for node in st.nodes.values():
            data = Path(st.state_dir) / node.name / "data"
            data.mkdir(parents=True, exist_ok=True)
            keys[node.name] = load_or_create_identity(data).public_key
        # Every namespace, then every link, each in one ip process: one process per
        # command (four a node, three a link) took a 200-node grid ~1,900 processes and
        # most of a minute. The state is saved first: 'lab down' deletes those that exist.
        st.save()
        ip_batch(None, [f"netns add {node.ns}" for node in st.nodes.values()])
        for node in st.nodes.values():  # before the links exist: 'default' applies to them
            sysctls(node.ns, ["net.ipv6.conf.all.accept_dad=0",
                              "net.ipv6.conf.default.accept_dad=0", "net.ipv4.ip_forward=1",
                              "net.ipv4.conf.all.rp_filter=0",
                              "net.ipv4.conf.default.rp_filter=0"])
        ip_batch(None, [f"link add m-{b} netns {st.nodes[a].ns} type veth "
                        f"peer name m-{a} netns {st.nodes[b].ns}" for a, b in st.links])
        for node in st.nodes.values():
            ap_address = f"{node.portal_address}/24"
            commands = ["link set lo up", f"address add {node.mesh_address}/32 dev lo"]
            if phones:  # the access point's stand-in: a bridge, one isolated port per phone
                commands += phone_net.bridge_commands(ap_address)
            else:  # no phone: one end of a veth pair inside the node keeps ap0 up
                commands += ["link add ap0 type veth peer name ap0p", "link set ap0p up",
                             "link set ap0 up", f"address add {ap_address} dev ap0"]
            commands += [f"link set m-{other} up" for other in self.neighbours(node.name)]
            ip_batch(node.ns, commands)
            # As 'meshhub net apply' does: no IPv6 on the access point.
            sysctls(node.ns, ["net.ipv6.conf.ap0.disable_ipv6=1",
                              "net.ipv6.conf.ap0.accept_ra=0"])
            if phones:
                node.phone_ns = f"{NS_PREFIX}{st.id}-p{node.number}"
                st.save()
                phone_net.add_phone(node.ns, node.phone_ns, node.number)
        for node in st.nodes.values():
            text = node_toml(node, st, self.neighbours(node.name),
                             [k for n, k in keys.items()
                              if n != node.name and n not in untrusted])
            atomic_write(node.config, text)
            if st.portal_user != "root":
                share_with_portal(Path(node.config).parent, st.portal_user)
            # The lab is one community: one roaming secret, for the agents only (0600).
            atomic_write(Path(node.config).parent / "data" / ROAM_SECRET_FILE,
                         roam_secret + "\n", mode=0o600)

    def _build_radio(self, phones: bool, untrusted: set[str]) -> None:
        """Radio lab: namespaces with simulated radios, ``meshhub net apply`` in each node,
        the topology on the air, and a phone namespace per node with its own radio."""
        from node.identity import load_or_create_identity
        from node.lab import radio_nodes
        from node.lab.radio import ensure_module

        st = self.state
        ensure_module()
        run("ip", "netns", "add", radio_nodes.air_namespace(self))
        roam_secret, mesh_key = secrets.token_hex(32), secrets.token_hex(32)
        keys = {}
        for node in st.nodes.values():
            data = Path(st.state_dir) / node.name / "data"
            data.mkdir(parents=True, exist_ok=True)
            keys[node.name] = load_or_create_identity(data).public_key
            run("ip", "netns", "add", node.ns)
            st.save()
            sysctls(node.ns, ["net.ipv6.conf.all.accept_dad=0",
                              "net.ipv6.conf.default.accept_dad=0",
                              "net.ipv4.conf.all.rp_filter=0",
                              "net.ipv4.conf.default.rp_filter=0"])
            ip_batch(node.ns, ["link set lo up"])
            radio_nodes.give_radios(self, node)
        for node in st.nodes.values():
            atomic_write(node.config, node_toml(
                node, st, self.neighbours(node.name),
                [k for n, k in keys.items() if n != node.name and n not in untrusted]))
            if st.portal_user != "root":
                share_with_portal(Path(node.config).parent, st.portal_user)
            # The lab is one community: one roaming secret, for the agents only (0600).
            atomic_write(Path(node.config).parent / "data" / ROAM_SECRET_FILE,
                         roam_secret + "\n", mode=0o600)
            # ... and one mesh key: the SAE password of the 802.11s links (0600).
            atomic_write(Path(node.config).parent / "data" / MESH_KEY_FILE,
                         mesh_key + "\n", mode=0o600)
            radio_nodes.apply_network(self, node)
            _log.info("lab %s: %s's network applied", st.id, node.name)
        if phones:
            for node in st.nodes.values():
                self._add_radio_phone(node)

    def _add_radio_phone(self, node: LabNode) -> LabPhone:
        from node.lab import radio_nodes

        taken = [p for p in self.state.phones.values() if p.node == node.name]
        name = f"p{node.number}" if not taken else f"p{node.number}-{len(taken) + 1}"
        phone = LabPhone(name, node.name, f"{NS_PREFIX}{self.state.id}-{name}")
        self.state.phones[name] = phone
        if not node.phone_ns:
            node.phone_ns = phone.ns
        radio_nodes.add_radio_phone(self, phone)
        return phone

    def add_phone(self, node_name: str) -> LabPhone:
        """Another phone next to ``node_name`` (``lab phone add``): in a radio lab a new
        namespace with its own radio, associated with the node's access point and leased;
        the phone's name (``p3-2``)."""
        node = self.node(node_name)
        if not self.state.radio:
            raise LabError("'lab phone add' needs a radio lab ('meshhub lab up --radio'); "
                           "without radios each node has the one phone of --phones")
        if not node.ap_mac:
            raise LabError(f"{node_name} has no access point a phone could join")
        if not node.pids:
            raise LabError(f"{node_name} is not running (its access point is off); "
                           f"'meshhub lab revive {node_name}' first")
        from node.lab import radio_nodes

        phone = self._add_radio_phone(node)
        radio_nodes.connect_phone(self, phone)
        self.phone_dhcp(phone.name)
        return phone

    def neighbours(self, name: str) -> list[str]:
        """Names of the nodes linked to ``name``."""
        return sorted({b for a, b in self.state.links if a == name} |
                      {a for a, b in self.state.links if b == name},
                      key=lambda n: int(n[1:]))

    # --- processes -----------------------------------------------------------

    def _start(self, node: LabNode, role: str, argv: list[str],
               env: dict[str, str] | None = None) -> None:
        log = Path(self.state.state_dir) / node.name / f"{role}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", node.ns, *argv],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=Path(self.state.state_dir) / node.name,
                                    umask=UMASK, env=env)
        node.pids[role] = proc.pid

    def _start_portal(self, node: LabNode) -> None:
        # As a node's unit runs it: Python at the portal's optimisation level (node/runtime.py).
        argv = [*_program("meshhub-portal"), "serve", "-c", node.config]
        user = self.state.portal_user
        if user == "root":
            argv.append("--allow-root")
        self._start(node, "portal", [*_as_portal_user(user), *argv], env=portal_environment())

    def start_node(self, name: str, portal: bool = True) -> None:
        """Start the node's agent (and through it the gate, babeld and dnsmasq) and, unless
        ``portal`` is false or the lab has none, its portal."""
        node = self.node(name)
        # As a node's unit runs it: at the agent's optimisation level (node/runtime.py).
        self._start(node, "agent", [*_program("meshhub"), "-c", node.config, "agent"],
                    env=agent_environment())
        if portal and self.state.portal:
            self._start_portal(node)
        self.state.save()

    def start_all(self) -> None:
        """Start every node's processes (they start in parallel)."""
        for name in self.state.nodes:
            self.start_node(name)

    def kill(self, name: str, gently: bool = False) -> None:
        """Stop everything running in the node: at once, as if it lost power (SIGKILL, so
        babeld cannot say goodbye), or ``gently`` (SIGTERM: babeld retracts its routes)."""
        node = self.node(name)
        if gently:
            for pid in node.pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(alive(p) for p in node.pids.values()):
                time.sleep(0.05)
        # A phone with a radio is a device of its own: it stays on (and roams).
        for namespace in (node.ns, "" if self.state.radio else node.phone_ns):
            if namespace:
                kill_namespace(namespace)
        if self.state.radio:
            from node.lab.radio_nodes import stop_radio

            stop_radio(node)
        # A node without power forwards nothing: its kernel forgets what babeld installed,
        # and the gate with its accepted phones (the agent loads it again on revive).
        run("ip", "netns", "exec", node.ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        for family in ("-4", "-6"):
            run("ip", "-n", node.ns, family, "route", "flush", "proto", "babel", check=False)
        run("ip", "netns", "exec", node.ns, "nft", "delete", "table", "inet", "meshhub",
            check=False)
        for pid in node.pids.values():
            reap(pid)
        node.pids = {}
        self.state.save()

    def revive(self, name: str) -> None:
        """Start a killed node again."""
        if any(alive(p) for p in self.node(name).pids.values()):
            raise LabError(f"{name} is running; 'meshhub lab kill {name}' first")
        run("ip", "netns", "exec", self.node(name).ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if self.state.radio:  # the radio comes back as at power-on: net apply, the air
            from node.lab import radio_nodes

            radio_nodes.apply_network(self, self.node(name))
            radio_nodes.shape(self, name, delays=True)  # a new mesh point: no qdisc yet
        self.start_node(name)
        if self.state.radio:  # ... and its neighbours peer with it again
            from node.lab.peering import CHANGE_WAIT, wait_peers

            wait_peers(self, CHANGE_WAIT)

    def _check_link(self, a: str, b: str) -> None:
        self.node(a), self.node(b)
        if (a, b) not in self.state.links and (b, a) not in self.state.links:
            raise LabError(f"there is no link between {a} and {b}; links: " +
                           ", ".join(f"{x}-{y}" for x, y in self.state.links))

    def set_link(self, a: str, b: str, up: bool) -> None:
        """Bring the link between ``a`` and ``b`` down (cut) or up (heal), both ends; over
        the air, their 802.11s peer link is closed (or opened again) from both ends
        (:mod:`node.lab.peering`), and this returns once it is."""
        self._check_link(a, b)
        if self.state.radio:
            from node.lab.peering import CHANGE_WAIT, wait_peers

            self.state.cut = [p for p in self.state.cut if set(p) != {a, b}]
            if not up:
                self.state.cut.append((a, b))
            self.state.save()
            wait_peers(self, CHANGE_WAIT)
            return
        for here, there in ((a, b), (b, a)):
            run("ip", "-n", self.node(here).ns, "link", "set", f"m-{there}",
                "up" if up else "down")

    def degrade(self, a: str, b: str, loss: int, delay_ms: float = 0) -> None:
        """Make the link between ``a`` and ``b`` lose ``loss`` percent of its frames in each
        direction (nftables random drops) and add ``delay_ms`` in each direction (netem: on
        a cable, all it carries; over the air, what each end sends to the other alone);
        ``loss=0, delay_ms=0`` makes it whole again."""
        from node.lab import air
        from node.lab.radio_nodes import shape

        self._check_link(a, b)
        if not 0 <= loss <= 100:
            raise LabError(f"--loss: {loss} is not a percentage (0-100)")
        for here, there in ((a, b), (b, a)):
            if not self.state.radio:
                air.netem(self.node(here).ns, f"m-{there}", delay_ms)
        self.state.degraded = [d for d in self.state.degraded if {d[0], d[1]} != {a, b}]
        if loss or delay_ms:
            self.state.degraded.append([a, b, loss, delay_ms])
        self.state.save()
        try:
            for name in (a, b):
                shape(self, name, delays=self.state.radio)
        except LabError:
            if delay_ms:  # this kernel cannot delay: keep the loss alone
                self.degrade(a, b, loss, 0)
            raise

    def exec(self, name: str, argv: list[str],
             **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside node ``name`` (or phone ``pN``) and wait for it."""
        ns = self.namespace(name)
        return subprocess.run(["ip", "netns", "exec", ns, *argv], text=True, check=False,
                              **kwargs)  # type: ignore[call-overload]

    # --- phones --------------------------------------------------------------

    def phone_dhcp(self, name: str) -> dict[str, str]:
        """Let phone ``pN`` (or node ``nN``'s phone) take a lease from its node's dnsmasq;
        the lease (``ip``, ``router``, ``opt114`` ...) is also kept in ``lab.json``."""
        if name in self.state.phones:
            phone = self.state.phones[name]
            phone.lease = phone_net.dhcp(phone.ns, Path(self.state.state_dir) / name)
            node = self.node(phone.node)
            if phone.ns == node.phone_ns:
                node.phone_lease = phone.lease
            self.state.save()
            return phone.lease
        node = self.node("n" + name[1:]) if name.startswith("p") else self.node(name)
        if not node.phone_ns:
            raise LabError("this lab has no phones; start it with --phones")
        folder = Path(self.state.state_dir) / f"p{node.number}"
        node.phone_lease = phone_net.dhcp(node.phone_ns, folder)
        self.state.save()
        return node.phone_lease

    def move_phone(self, name: str, to: str) -> None:
        """Carry phone ``pN`` to node ``to``'s access point, as a resident walks down the
        street: its link to its current node is cut and a new one (same MAC) joins
        ``to``'s bridge; it has no address until :meth:`phone_dhcp`."""
        if self.state.radio:
            raise LabError("in a radio lab a phone roams over the air by itself (when its "
                           "node's access point goes away: 'meshhub lab kill NODE')")
        owner = self.node("n" + name[1:]) if name.startswith("p") else self.node(name)
        if not owner.phone_ns:
            raise LabError("this lab has no phones; start it with --phones")
        here, there = self.node(owner.phone_at or owner.name), self.node(to)
        if here.name == there.name:
            return
        mac = json.loads(run("ip", "-n", owner.phone_ns, "-j", "link", "show",
                             phone_net.PHONE_IF).stdout)[0]["address"]
        run("ip", "-n", here.ns, "link", "del", f"ap0p{owner.number}")
        phone_net.cable(there.ns, owner.phone_ns, owner.number, mac)
        owner.phone_at, owner.phone_lease = there.name, {}
        self.state.save()

    def connect_phones(self) -> None:
        """Every phone takes its lease (in parallel)."""
        if self.state.radio:
            from node.lab.radio_nodes import connect_phone

            with ThreadPoolExecutor(CHECK_WORKERS) as pool:
                list(pool.map(lambda p: connect_phone(self, p), self.state.phones.values()))
            names = list(self.state.phones)
        else:
            names = [n.name for n in self.state.nodes.values() if n.phone_ns]
        with ThreadPoolExecutor(CHECK_WORKERS) as pool:
            list(pool.map(self.phone_dhcp, names))

    # --- looking -------------------------------------------------------------

    def node(self, name: str) -> LabNode:
        """The node called ``name`` (``n3``), or a clear error."""
        try:
            return self.state.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in lab {self.state.id}; nodes: " +
                           ", ".join(self.state.nodes)) from None

    def namespace(self, name: str) -> str:
        """The namespace of node ``nN`` or phone ``pN`` (``pN-2``...)."""
        if name in self.state.phones:
            return self.state.phones[name].ns
        if name.startswith("p") and name[1:].isdigit():
            phone = self.node("n" + name[1:]).phone_ns
            if not phone:
                raise LabError("this lab has no phones; start it with --phones")
            return phone
        return self.node(name).ns

    def socket_path(self, name: str) -> Path:
        """The babeld monitoring socket of a node (a file: readable from the host)."""
        return Path(self.state.state_dir) / name / "run" / "babeld.sock"

    def routes(self, name: str) -> list[str]:
        """Mesh addresses node ``name`` has a reachable babeld route to, or [] if unread."""
        from node.mesh.babel_monitor import dump
        from node.mesh.state import MeshState

        state = MeshState("10.42.0.0/16")
        state.reset(connected=True)
        try:
            state.feed(dump(str(self.socket_path(name)), timeout=2)[1])
        except (OSError, ConnectionError):
            return []
        return state.node_addresses(installed=True)

    def converged(self, names: list[str] | None = None) -> bool:
        """Whether every node in ``names`` has a route to every other one of them."""
        chosen = [self.node(n) for n in (names or list(self.state.nodes))]
        for node in chosen:
            have = set(self.routes(node.name))
            if any(o.mesh_address not in have for o in chosen if o is not node):
                return False
        return True

    def agent_health(self, name: str, timeout: float = 2) -> dict[str, object] | None:
        """The node's ``/api/health`` document, fetched inside its namespace; None when
        it does not answer in time (a slow machine is not an error here)."""
        node = self.node(name)
        try:
            answer = http_get(node.ns, node.mesh_address, AGENT_PORT, "/api/health", timeout)
            return json.loads(answer[1]) if answer and answer[0] == 200 else None
        except (ValueError, OSError):
            return None

    def portal_answers(self, name: str, timeout: float = 2) -> bool:
        """Whether the node's portal answers ``/about`` (inside its namespace)."""
        node = self.node(name)
        try:
            answer = http_get(node.ns, node.mesh_address, PORTAL_PORT, "/about", timeout)
        except OSError:
            return False
        return answer is not None and 200 <= answer[0] < 300

    def agent_up(self, name: str) -> bool:
        """Whether the node's agent has started its API and babeld (babeld's socket
        exists: the agent starts babeld after its API) — a file check, no process."""
        return self.socket_path(name).exists()

    def start_agents(self, timeout: float) -> None:
        """Start every node's agent, a few at a time (:data:`STARTING_PER_CPU` per
        processor): the next starts when one of those starting is up. A node whose agent
        exits or is not up within ``timeout`` seconds is a :class:`LabError` naming it."""
        limit = max(2, STARTING_PER_CPU * (os.cpu_count() or 1))
        waiting = list(self.state.nodes)
        starting: set[str] = set()
        deadline = time.monotonic() + timeout
        while waiting or starting:
            while waiting and len(starting) < limit:
                name = waiting.pop(0)
                self.start_node(name, portal=False)
                starting.add(name)
            starting -= {n for n in starting if self.agent_up(n)}
            self._check_agents_alive(starting)
            if starting and time.monotonic() > deadline:
                raise self._not_ready(starting, "agent", f"was not up within {timeout:g} s")
            if starting:
                time.sleep(CHECK_PAUSE_SECONDS)  # a look at files, not a wait for an event

    def _check_agents_alive(self, names: set[str]) -> None:
        """A :class:`LabError` naming the nodes among ``names`` whose agent exited."""
        dead = {n for n in names if not alive(self.node(n).pids.get("agent", 0))}
        if dead:
            raise self._not_ready(dead, "agent", "exited")

    def last_log_line(self, name: str, role: str = "agent") -> str:
        """The last non-empty line of the node's ``role`` log (``agent.log``), or a note
        that it has none: what a failing node said last."""
        log = LOGS.get(role, f"{role}.log")
        path = Path(self.state.state_dir) / name / log
        try:
            with path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [x for x in f.read().decode("utf-8", "replace").splitlines()
                         if x.strip()]
        except OSError:
            return f"no {log}"
        return lines[-1].strip()[:300] if lines else f"{log} is empty"

    def _not_ready(self, names: set[str], role: str, what: str) -> LabError:
        """One line naming the first node that failed (with its last log line) and how
        many others did; the caller removes the lab."""
        ordered = sorted(names, key=lambda n: int(n[1:]) if n[1:].isdigit() else 0)
        first = ordered[0]
        others = ""
        if len(ordered) > 1:
            shown = ", ".join(ordered[1:6]) + (", ..." if len(ordered) > 6 else "")
            others = f"; {len(ordered) - 1} more: {shown}"
        log = Path(self.state.state_dir) / first / LOGS.get(role, f"{role}.log")
        return LabError(f"{first}: its {role} {what}; its last log line: "
                        f"{self.last_log_line(first, role)!r}{others}; read {log}")

    def wait_ready(self, timeout: float, start_portals: bool = False,
                   portals_after_routes: bool = False) -> float:
        """Wait until every agent answers, babeld routes connect all nodes and (in a lab
        with portals) every portal answers; seconds taken.

        ``start_portals``: start each node's portal as soon as its agent is up (its babeld
        has opened its socket), so that the agents, which the routes wait for, do not
        share the processors with the portals while they start. With
        ``portals_after_routes`` (radio labs) the portals start only once every node has
        a route to every other, :data:`PORTALS_STARTING_PER_CPU` per processor at a time,
        and the routes are checked again once they answer: a slow machine starting five
        portals made babeld miss hellos over the air, and the routes never settled. A
        check that gets no answer in time is tried again (a busy machine answers late);
        only the deadline fails, naming the nodes still waiting.
        """
        started = time.monotonic()
        deadline = started + timeout
        pending = set(self.state.nodes)
        early = start_portals and self.state.portal and not portals_after_routes
        with ThreadPoolExecutor(CHECK_WORKERS) as pool:
            while pending:
                up = sorted(n for n in pending if self.agent_up(n))
                answered = _passing(pool, lambda n: self.agent_health(n, 2) is not None, up)
                for name in answered:
                    pending.discard(name)
                    if early:
                        self._start_portal(self.node(name))
                if answered and early:
                    self.state.save()
                self._check_agents_alive(pending)
                if pending and time.monotonic() > deadline:
                    raise self._not_ready(pending, "agent", f"did not answer within {timeout:g} s")
                if pending:
                    time.sleep(CHECK_PAUSE_SECONDS)
            _log.info("lab %s: every agent answers after %.1f s", self.state.id,
                      time.monotonic() - started)
            self._wait_routes(deadline, timeout)
            _log.info("lab %s: routes to every node after %.1f s", self.state.id,
                      time.monotonic() - started)
            if not self.state.portal:
                return time.monotonic() - started
            if early or not start_portals:
                self._wait_portals(pool, deadline, timeout, started=sorted(self.state.nodes))
            else:
                self._wait_portals(pool, deadline, timeout, to_start=list(self.state.nodes))
                _log.info("lab %s: portals answering after %.1f s", self.state.id,
                          time.monotonic() - started)
                self._wait_routes(deadline, timeout)
                _log.info("lab %s: routes to every node again after %.1f s", self.state.id,
                          time.monotonic() - started)
        return time.monotonic() - started

    def _wait_routes(self, deadline: float, timeout: float) -> None:
        """Until every node has had a route to every other (a node counts once it has)."""
        unrouted = set(self.state.nodes)
        while unrouted:
            unrouted = {n for n in unrouted if not self._routes_to_all(n)}
            if unrouted and time.monotonic() > deadline:
                raise self._not_ready(unrouted, "babeld", "has no route to every node "
                                      f"within {timeout:g} s")
            if unrouted:
                time.sleep(CHECK_PAUSE_SECONDS)

    def _wait_portals(self, pool: ThreadPoolExecutor, deadline: float, timeout: float, *,
                      started: list[str] | None = None,
                      to_start: list[str] | None = None) -> None:
        """Until the portals of ``started`` and of ``to_start`` answer. Those of ``to_start``
        are started here, :data:`PORTALS_STARTING_PER_CPU` per processor at a time: the
        next starts when one of those starting answers."""
        limit = max(1, PORTALS_STARTING_PER_CPU * (os.cpu_count() or 1))
        waiting, starting = list(to_start or ()), set(started or ())
        while waiting or starting:
            while waiting and len(starting) < limit:
                name = waiting.pop(0)
                self._start_portal(self.node(name))
                self.state.save()
                starting.add(name)
            starting -= set(_passing(pool, lambda n: self.portal_answers(n, 2),
                                     sorted(starting)))
            if starting and time.monotonic() > deadline:
                raise self._not_ready(starting, "portal", f"did not answer within {timeout:g} s")
            if starting:
                time.sleep(CHECK_PAUSE_SECONDS)

    def _routes_to_all(self, name: str) -> bool:
        """Whether node ``name``'s babeld has a route to every other node."""
        have = set(self.routes(name))
        return all(o.mesh_address in have for o in self.state.nodes.values() if o.name != name)

    # --- removing ------------------------------------------------------------

    def down(self, keep_files: bool = False) -> None:
        """Stop every process, delete every namespace and the state folder (idempotent).

        ``keep_files``: leave the nodes' folders (their logs and rendered files) and
        delete only the lab's state file, so that the folder no longer counts as a
        running lab (``lab up`` failing keeps what its error points to)."""
        for node in self.state.nodes.values():
            for pid in node.pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                alive(p) for n in self.state.nodes.values() for p in n.pids.values()):
            time.sleep(0.05)
        existing = set(lab_namespaces())
        for phone in self.state.phones.values():
            if phone.ns in existing:
                kill_namespace(phone.ns)
                run("ip", "netns", "del", phone.ns, check=False)
            if phone.pid:
                reap(phone.pid)
        for node in self.state.nodes.values():
            for namespace in (node.ns, node.phone_ns):
                if namespace and namespace in existing:
                    kill_namespace(namespace)
                    run("ip", "netns", "del", namespace, check=False)
            for pid in node.pids.values():
                reap(pid)
            node.pids = {}
        if self.state.radio:  # the lab's air; the radios went with their namespaces
            air = f"{self.state.ns_prefix}air"
            if air in existing:
                run("ip", "netns", "del", air, check=False)
        isp = f"{self.state.ns_prefix}isp"  # the lab's internet (--uplinks)
        if isp in existing:
            kill_namespace(isp)
            run("ip", "netns", "del", isp, check=False)
        for pid in self.state.isp_pids:
            reap(pid)
        if keep_files:
            with contextlib.suppress(FileNotFoundError):
                (Path(self.state.state_dir) / STATE_FILE).unlink()
            return
        shutil.rmtree(self.state.state_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the default root, when this was its last lab
            STATE_ROOT.rmdir()


def _passing(pool: ThreadPoolExecutor, check: Callable[[str], bool],
             names: list[str]) -> list[str]:
    """The ``names`` for which ``check`` is true, checked in parallel on ``pool``."""
    return [n for n, ok in zip(names, pool.map(check, names), strict=True) if ok]
