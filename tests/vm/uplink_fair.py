"""A fair share of the uplink, measured inside the booted node (its Debian kernel has CAKE
and netem; the build machine's has neither).

Inside the guest: an "isp" namespace at the other end of a veth cable ``up0`` is the
internet: its web server (198.18.0.80) streams without end (``/stream``) or answers a
small page (``/small``) and counts uploads to port 81 per phone (``/received``); netem
on its side is the line: :data:`LINE_KBIT` each way, :data:`LINE_DELAY_MS` down, and a
modem's deep buffer. The node becomes a gateway on ``up0``
through its own ``node.toml`` and a restart of its agent, which applies (or not) CAKE
itself. Ten phones on simulated radios associate, take their leases and accept the
house rules as a phone does. Then the issue's two loads, each once without a speed set
(CAKE off: the modem's queue decides; the reference) and once with CAKE:

* **one greedy phone, nine light ones**: phone 1 downloads over :data:`CONNECTIONS`
  connections while phones 2-10 each open a small page every :data:`LIGHT_EVERY`
  seconds (a new connection each, as a browser's first request); their page times
  against the same nine phones' with nothing else on the line (idle), measured just
  before, the same way (CAKE on or off), so both see the same guest;
* **ten greedy phones**: every phone downloads, phones 1 and 2 over
  :data:`CONNECTIONS` connections, the others over one; Jain's fairness index of their
  ten throughputs. Without CAKE every connection gets about the same, so the two
  many-connection phones get most of the line;
* **ten uploading phones**, the same way round: the isp's server counts what it receives
  from each phone, through the line's upload side (netem on an ifb device at the isp's
  end: the modem's queue) and CAKE on the uplink's own queue (``dual-srchost nat``).

Everything made is removed at the end and ``node.toml`` restored; the agent is
restarted on it.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from dataclasses import dataclass

from tests.vm.conftest import BootedNode

#: The line's real download speed (netem in the "isp" namespace), kbit/s. Low enough that
#: the TCG guest keeps up with ten phones.
LINE_KBIT = 1500
#: What ``clients.uplink_download_kbit`` and ``uplink_upload_kbit`` say: 90 % of the line
#: (the same speed both ways), as docs/uplink.md asks.
SHAPED_KBIT = 1350
#: The modem's buffer (packets): about 1 s of the line, as home routers have.
LINE_BUFFER_PACKETS = 120
#: The line's delay (one way, on the download side).
LINE_DELAY_MS = 60
#: How close CAKE's shaper must come to :data:`SHAPED_KBIT` over the window, counting what
#: it sent and what it dropped (with ``ingress``, a dropped packet has crossed the line
#: and counts against the rate, tc-cake(8)). The window's edges are timed in the guest;
#: dropped packets are taken at the mean size of those sent (a full frame is at most
#: 2 % of the rate more).
RATE_TOLERANCE = 0.05
#: What CAKE's shaper must spend at least while one phone downloads beside nine light
#: ones (four connections keep it busy most of the time, not always): below it, the line
#: was not loaded and the light phones' page times would say nothing.
LOADED = 0.8
#: The phones (radios phy1..phy10; phy0 is the node's access point).
PHONES = tuple(f"fair{n}" for n in range(1, 11))
#: A greedy phone's connections (a browser's downloads in parallel); see the module.
CONNECTIONS = 4
#: How often a light phone opens a small page (seconds).
LIGHT_EVERY = 1.0
#: Seconds each loaded run lasts, and the first seconds left out (slow start, queues filling).
RUN_SECONDS, WARM_SECONDS = 18, 6
#: CAKE's counters stop this long before the downloads do (each client stops on its own
#: clock, which starts a little after the shell's).
TAIL_SECONDS = 2
#: The idle run (the nine light phones alone).
IDLE_SECONDS = 8
DIR = "/var/tmp/fair"

SERVER = r"""
import http.server, json, socket, socketserver, threading, time
CHUNK = b"x" * 16384
SMALL = b"y" * 2000
RECEIVED = {}  # phone -> bytes uploaded to port 81
LOCK = threading.Lock()
def sink(conn):
    name = b""
    while not name.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            return
        name += byte
    phone = name.decode().strip()
    while True:
        data = conn.recv(65536)
        if not data:
            break
        with LOCK:
            RECEIVED[phone] = RECEIVED.get(phone, 0) + len(data)
def sinks():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("198.18.0.80", 81))
    server.listen(64)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=sink, args=(conn,), daemon=True).start()
threading.Thread(target=sinks, daemon=True).start()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.path == "/received":
            with LOCK:
                # Its own clock with the counts: the reading's time, however long the
                # request took to arrive in a loaded guest.
                body = json.dumps({"at": time.monotonic(), "bytes": RECEIVED}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/small":
            self.send_header("Content-Length", str(len(SMALL)))
            self.end_headers()
            self.wfile.write(SMALL)
            return
        self.end_headers()
        try:
            while True:
                self.wfile.write(CHUNK)
        except OSError:
            pass
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 64
Server(("198.18.0.80", 80), Handler).serve_forever()
"""

CLIENT = r"""
import http.client, json, os, socket, sys, threading, time
HOST = "198.18.0.80"
mode, seconds, warm, every = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
phone = sys.argv[5]
# Every phone starts on the same signal, once all of them are up (ten Pythons starting
# in a loaded guest take seconds, differently each): its window is the counters' window.
open(phone + ".ready", "w").close()
deadline = time.monotonic() + 300
while not os.path.exists("go"):
    if time.monotonic() > deadline:
        sys.exit(phone + ": no start signal within 300 s")
    time.sleep(0.02)
start = time.monotonic()
def elapsed():
    return time.monotonic() - start
if mode.startswith("up"):
    def push():
        conn = socket.create_connection((HOST, 81), timeout=30)
        conn.sendall(phone.encode() + b"\n")
        chunk = b"u" * 16384
        while elapsed() < seconds:
            conn.sendall(chunk)
        conn.close()
    pushers = [threading.Thread(target=push, daemon=True) for _ in range(int(mode[2:]))]
    for t in pushers:
        t.start()
    for t in pushers:
        t.join()
    print(json.dumps({"uploaded": True}))
    sys.exit(0)
if mode == "light":
    out = []
    while elapsed() < seconds:
        began = time.monotonic()
        try:
            conn = http.client.HTTPConnection(HOST, 80, timeout=10)
            conn.request("GET", "/small")
            body = conn.getresponse().read()
            conn.close()
            ms = (time.monotonic() - began) * 1000 if len(body) == 2000 else None
        except OSError:
            ms = None
        if began - start >= warm:
            out.append(ms)
        time.sleep(max(0.0, every - (time.monotonic() - began)))
    print(json.dumps({"latencies_ms": out}))
    sys.exit(0)
flows = int(mode)
got = [0] * flows
def stream(i):
    conn = http.client.HTTPConnection(HOST, 80, timeout=10)
    conn.request("GET", "/stream")
    answer = conn.getresponse()
    while elapsed() < seconds:
        data = answer.read1(65536)
        if not data:
            break
        got[i] += len(data)
    conn.close()
threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(flows)]
for t in threads:
    t.start()
time.sleep(warm)
before = sum(got)
time.sleep(seconds - warm)
print(json.dumps({"kbit_per_s": (sum(got) - before) * 8 / 1000 / (seconds - warm)}))
"""

ACCEPT = r"""
import http.client, re, sys
portal = sys.argv[1]
def get(path, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection(portal, 80, timeout=60)
    conn.request(method, path, body=body, headers={"Host": portal, **(headers or {})})
    answer = conn.getresponse()
    return answer.status, dict(answer.getheaders()), answer.read().decode("utf-8", "replace")
# A 503 is the page's "the network's gate did not answer, please try again in a moment"
# (the agent just restarted, in a slow guest, ten phones at once): a resident taps again.
for attempt in range(1, 4):
    status, headers, body = get("/welcome")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    status, headers, _ = get("/welcome", "POST", "csrf_token=" + token,
                             {"Cookie": cookie,
                              "Content-Type": "application/x-www-form-urlencoded"})
    if status != 503:
        break
print(status, attempt)
"""

UDHCPC = """#!/bin/sh
case "$1" in
bound|renew)
    ip address replace "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router"
    echo "$router" >"$LEASE";;
esac
"""

#: A run's load: phone -> ``"light"`` or its number of download connections.
Load = dict[str, str]
IDLE: Load = {phone: "light" for phone in PHONES[1:]}
ONE_GREEDY: Load = {PHONES[0]: str(CONNECTIONS), **IDLE}
TEN_GREEDY: Load = {phone: str(CONNECTIONS if n < 2 else 1) for n, phone in enumerate(PHONES)}
#: The same ten, uploading (their bytes counted by the isp's server, per phone).
TEN_UPLOADING: Load = {phone: "up" + mode for phone, mode in TEN_GREEDY.items()}


@dataclass(frozen=True)
class Run:
    """One run: each downloading phone's throughput, the light phones' page times, and
    what CAKE and the isp's server counted over the measured window."""

    kbit: dict[str, float]  #: downloading phone -> kbit/s
    latencies_ms: list[float | None]  #: every light phone's small pages (None: failed)
    #: ``bytes`` and ``packets`` CAKE sent on ``ifb-mh0``, its ``drops`` (packets), and
    #: the window's ``seconds`` (empty without CAKE)
    cake_window: dict[str, float]
    #: The isp server's TCP counters over the window (segments sent, retransmitted,
    #: retransmission timeouts): what drops cost the downloads
    server_tcp: dict[str, int]

    @property
    def used_kbit(self) -> float:
        """What the downloading phones got together."""
        return sum(self.kbit.values())

    @property
    def jain(self) -> float:
        """Jain's fairness index of the downloading phones' throughputs (1: all equal,
        1/n: one phone gets everything)."""
        values = list(self.kbit.values())
        squares = sum(x * x for x in values)
        return sum(values) ** 2 / (len(values) * squares) if squares else 0.0

    def p95_ms(self) -> float:
        """The light phones' 95th-percentile page time; a failed page counts as 10 s."""
        return percentile([ms if ms is not None else 10_000.0 for ms in self.latencies_ms], 95)

    @property
    def cake_sent_kbit(self) -> float:
        """What CAKE passed on over the window (frames as it counts them)."""
        w = self.cake_window
        return w["bytes"] * 8 / 1000 / w["seconds"] if w else 0.0

    @property
    def cake_shaped_kbit(self) -> float:
        """What CAKE's shaper spent over the window: sent plus dropped (in ``ingress`` mode
        a dropped packet counts against the rate: it has crossed the line already);
        dropped packets are taken at the window's mean packet size."""
        w = self.cake_window
        if not w or not w["packets"]:
            return 0.0
        return (w["bytes"] + w["drops"] * w["bytes"] / w["packets"]) * 8 / 1000 / w["seconds"]


def percentile(values: list[float], p: int) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * p // 100) - 1)]


@dataclass(frozen=True)
class Figures:
    """What the step measured."""

    #: "idle" (the nine light phones alone, just before), "one greedy", "ten greedy",
    #: "ten uploading", no speed set (CAKE off)
    without: dict[str, Run]
    with_cake: dict[str, Run]  #: the same with CAKE
    cake_qdisc: str  #: ``tc -s qdisc show dev ifb-mh0`` after the CAKE runs
    #: ``networkctl list``'s setup state of ``up0`` and ``ifb-mh0``: the image's networkd
    #: must leave both alone (it takes physical wired ports only)
    networkd: dict[str, str]
    fairness: str  #: the health document's ``network.uplink.fairness``
    seconds: dict[str, float]  #: where the step's time went, phase by phase

    def lines(self) -> list[str]:
        """``name: value unit (target: ...)`` lines for the report."""
        cake1, off1 = self.with_cake["one greedy"], self.without["one greedy"]
        cake10, off10 = self.with_cake["ten greedy"], self.without["ten greedy"]
        cakeup, offup = self.with_cake["ten uploading"], self.without["ten uploading"]
        idle, idle_off = self.with_cake["idle"].p95_ms(), self.without["idle"].p95_ms()

        def pages(run: Run) -> str:
            times = sorted(ms if ms is not None else 10_000.0 for ms in run.latencies_ms)
            return (f"p50 {percentile(times, 50):.0f}, slowest "
                    + " ".join(f"{ms:.0f}" for ms in times[-8:][::-1])
                    + f" ms of {len(times)}; guest idle {run.server_tcp.get('guest_idle_pct')} %")

        def kbit(run: Run) -> str:
            return " ".join(f"{run.kbit[p]:.0f}" for p in PHONES if p in run.kbit)

        def cake(run: Run, target: str) -> str:
            return (f"CAKE's shaper spent {run.cake_shaped_kbit:.0f} kbit/s, sent + dropped "
                    f"(target: {target}), passed on "
                    f"{run.cake_sent_kbit:.0f}; {run.cake_window}; isp's TCP {run.server_tcp}")

        return [
            f"9 light phones alone (idle), p95: CAKE {idle:.0f} ms, without {idle_off:.0f} ms",
            f"1 greedy + 9 light, light p95: CAKE {cake1.p95_ms():.0f} ms, without "
            f"{off1.p95_ms():.0f} ms (target: <= 2 x idle p95 = {2 * idle:.0f} ms; without: "
            f"{2 * idle_off:.0f}); failed "
            f"pages: CAKE {cake1.latencies_ms.count(None)}, without "
            f"{off1.latencies_ms.count(None)}; greedy phone got: CAKE "
            f"{cake1.used_kbit:.0f}, without {off1.used_kbit:.0f} kbit/s",
            f"light pages: CAKE idle {pages(self.with_cake['idle'])}; CAKE {pages(cake1)}; "
            f"without idle {pages(self.without['idle'])}; without {pages(off1)}",
            f"10 greedy, Jain's index: CAKE {cake10.jain:.2f}, without {off10.jain:.2f} "
            f"(target: >= 0.9)",
            f"10 greedy, kbit/s per phone, CAKE: {kbit(cake10)} (sum {cake10.used_kbit:.0f} "
            f"of {SHAPED_KBIT})",
            f"10 greedy, kbit/s per phone, without: {kbit(off10)} (sum {off10.used_kbit:.0f} "
            f"of {LINE_KBIT})",
            f"10 uploading, Jain's index: CAKE {cakeup.jain:.2f}, without {offup.jain:.2f} "
            f"(target: >= 0.9)",
            f"10 uploading, kbit/s per phone, CAKE: {kbit(cakeup)} (sum {cakeup.used_kbit:.0f} "
            f"of {SHAPED_KBIT}); without: {kbit(offup)} (sum {offup.used_kbit:.0f} of "
            f"{LINE_KBIT}); guest idle: CAKE {cakeup.server_tcp.get('guest_idle_pct')} %, "
            f"without {offup.server_tcp.get('guest_idle_pct')} %",
            f"1 greedy + 9 light, {cake(cake1, f'>= {LOADED:.0%} of {SHAPED_KBIT}')}; "
            f"without: isp's TCP {off1.server_tcp}",
            f"10 greedy, {cake(cake10, f'{SHAPED_KBIT} +- {RATE_TOLERANCE:.0%}')}; without: "
            f"isp's TCP {off10.server_tcp}",
            "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in self.seconds.items()),
        ]


def _files(files: dict[str, str]) -> str:
    steps = [f"mkdir -p {DIR}"]
    for path, text in files.items():
        data = base64.b64encode(text.encode()).decode()
        steps.append(f"echo {data} | base64 -d >{path}")
    return " && ".join(steps)


def _health(node: BootedNode) -> str:
    listen = node.image.node_toml["agent"]["listen"]  # type: ignore[index]
    from node.config.schema import settings_by_key

    port = settings_by_key()["agent.port"].default
    return f"busybox wget -q -O - http://{listen}:{port}/api/health"


def set_uplink(node: BootedNode, kbit: int) -> str:
    """Make the node a gateway on ``up0`` at ``kbit`` both ways (0: fairness off), restart
    its agent, and wait for its health document to say what fairness it applied and for
    its access point to open again; return that fairness line."""
    edit = ("import re,sys;p='/etc/meshhub/node.toml';t=open(p).read();"
            "t=re.sub(r'(?m)^uplink_(interface|download_kbit|upload_kbit) = .*\\n','',t);"
            f"k='uplink_interface = \"up0\"\\nuplink_download_kbit = {kbit}\\n"
            f"uplink_upload_kbit = {kbit}\\n';"
            "t=re.sub(r'(?m)^\\[clients\\]\\n',lambda m:m.group(0)+k,t,count=1) "
            "if re.search(r'(?m)^\\[clients\\]$',t) else t+'\\n[clients]\\n'+k;"
            "open(p,'w').write(t)")
    node.sh(f"python3 -c {shlex.quote(edit)} && systemctl restart meshhub-agent")
    expect = "CAKE" if kbit else "off"
    wait = (f"for i in $(seq 900); do h=$({_health(node)} 2>/dev/null) && "
            f"echo \"$h\" | grep -q '\"fairness\": *\"{expect}' && "
            "iw dev wlan0 info 2>/dev/null | grep -q 'type AP' && { echo \"$h\"; exit 0; }; "
            "sleep 1; done; echo \"$h\"; exit 1")
    health = json.loads(node.sh(wait, timeout=960))
    return str(health["network"]["uplink"]["fairness"])


def set_up(node: BootedNode) -> None:
    """The isp namespace, its line and server, and the uplink cable ``up0``."""
    node.sh(_files({f"{DIR}/server.py": SERVER, f"{DIR}/client.py": CLIENT,
                    f"{DIR}/accept.py": ACCEPT, f"{DIR}/udhcpc.sh": UDHCPC}))
    node.sh(" && ".join([
        f"chmod 755 {DIR}/udhcpc.sh", "cp -p /etc/meshhub/node.toml /etc/meshhub/node.toml.fair",
        "ip netns add isp", "ip link add up0 type veth peer name isp0",
        "ip link set isp0 netns isp", "ip link set up0 up",
        "ip address add 198.18.1.1/30 dev up0",
        "ip route add default via 198.18.1.2 dev up0 metric 10",
        "ip -n isp link set lo up", "ip -n isp link set isp0 up",
        "ip -n isp address add 198.18.1.2/30 dev isp0",
        "ip -n isp address add 198.18.0.80/32 dev lo",
        f"tc -n isp qdisc add dev isp0 root netem rate {LINE_KBIT}kbit delay {LINE_DELAY_MS}ms "
        f"limit {LINE_BUFFER_PACKETS}",
        # The line's upload side: what arrives at the isp passes a modem's queue too.
        "ip -n isp link add isp-up type ifb", "ip -n isp link set isp-up up",
        "tc -n isp qdisc add dev isp0 handle ffff: ingress",
        "tc -n isp filter add dev isp0 parent ffff: protocol all matchall action mirred "
        "egress redirect dev isp-up",
        f"tc -n isp qdisc add dev isp-up root netem rate {LINE_KBIT}kbit "
        f"limit {LINE_BUFFER_PACKETS}",
        f"ip netns exec isp sh -c 'python3 {DIR}/server.py >{DIR}/server.log 2>&1 & "
        f"echo $! >{DIR}/server.pid'"]))


def _each(phones: tuple[str, ...], command: str) -> str:
    """``command`` for every phone at once (``{phone}`` and ``{n}``, its radio's number,
    filled in); fails if any of them fails."""
    jobs = [command.format(phone=phone, n=PHONES.index(phone) + 1) for phone in phones]
    return ("pids=''; " + " ".join(f"( {job} ) & pids=\"$pids $!\";" for job in jobs)
            + " rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc")


def connect_phones(node: BootedNode) -> None:
    """Each phone (radios phy1..) associates, takes its lease and accepts, as a phone does;
    all at once, as residents' phones would."""
    ssid = node.image.node_toml["wifi"]["ssid"]  # type: ignore[index]
    node.sh(_files({f"{DIR}/wpa.conf": f'network={{\n ssid="{ssid}"\n key_mgmt=NONE\n}}\n'}))
    node.sh(" && ".join(
        f"ip netns add {phone} && iw phy phy{n} set netns name {phone} && "
        f"ip -n {phone} link set lo up && ip -n {phone} link set wlan{n} up && "
        f"ip netns exec {phone} wpa_supplicant -B -i wlan{n} -c {DIR}/wpa.conf "
        f"-P {DIR}/{phone}.wpa.pid -f {DIR}/{phone}.wpa.log"
        for n, phone in enumerate(PHONES, start=1)))
    node.sh(_each(PHONES, "for i in $(seq 240); do grep -q CTRL-EVENT-CONNECTED "
                          f"{DIR}/{{phone}}.wpa.log && exit 0; sleep 0.5; done; "
                          f"cat {DIR}/{{phone}}.wpa.log; exit 1"), timeout=180)
    node.sh(_each(PHONES, f"LEASE={DIR}/{{phone}}.router ip netns exec {{phone}} busybox "
                          f"udhcpc -i wlan{{n}} -n -q -t 20 -s {DIR}/udhcpc.sh"), timeout=180)
    accept_phones(node)


def accept_phones(node: BootedNode) -> None:
    """Connect on the portal from every phone; then each one fetches a page of the isp."""
    out = node.sh(_each(PHONES, f"r=$(ip netns exec {{phone}} python3 {DIR}/accept.py "
                                f"$(cat {DIR}/{{phone}}.router)) && echo {{phone}} $r && "
                                f"ip netns exec {{phone}} curl -sf -o /dev/null --max-time 60 "
                                "http://198.18.0.80/small"), timeout=240)
    answers = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert {phone: answer[0] for phone, answer in answers.items()} == \
        {phone: "303" for phone in PHONES}, f"Connect answered {answers}"
    tries = {phone: int(answer[1]) for phone, answer in answers.items() if answer[1] != "1"}
    if tries:
        print(f"Connect tapped again after a 503 (the gate did not answer in time): {tries}")


def count_associations(node: BootedNode) -> None:
    """Note how often each phone has associated so far (``PHONE.count``)."""
    node.sh(_each(PHONES, f"grep -c CTRL-EVENT-CONNECTED {DIR}/{{phone}}.wpa.log "
                          f">{DIR}/{{phone}}.count || true"))


def reassociated(node: BootedNode) -> None:
    """Wait until every phone associated again after its access point restarted."""
    node.sh(_each(PHONES, "for i in $(seq 600); do [ $(grep -c CTRL-EVENT-CONNECTED "
                          f"{DIR}/{{phone}}.wpa.log) -gt $(cat {DIR}/{{phone}}.count) ] "
                          f"&& exit 0; sleep 0.5; done; cat {DIR}/{{phone}}.wpa.log; exit 1"),
            timeout=330)


def cake_counters(stats: str) -> dict[str, float]:
    """``bytes``, ``packets`` and ``drops`` of the ``cake`` qdisc in ``tc -s -j qdisc``'s
    output (empty when there is none)."""
    for qdisc in json.loads(stats or "[]"):
        if qdisc.get("kind") == "cake":
            return {key: float(qdisc[key]) for key in ("bytes", "packets", "drops")}
    return {}


def tcp_counters(text: str) -> dict[str, int]:
    """The isp server's TCP counters (``nstat`` lines marked ``%``): segments sent,
    retransmitted, and retransmission timeouts."""
    counters = {}
    for line in text.splitlines():
        fields = line[1:].split()
        if line.startswith("%Tcp") and len(fields) >= 2 and fields[1].isdigit():
            counters[fields[0]] = int(fields[1])
    return counters


def _json(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("%")).strip()


def _idle_pct(first: str, last: str) -> int:
    """The guest's idle CPU time over the window, in % (``/proc/stat``'s cpu line)."""
    def cpu(text: str) -> list[int]:
        line = next(line for line in text.splitlines() if line.startswith("%cpu "))
        return [int(x) for x in line.split()[1:]]
    a, b = cpu(first), cpu(last)
    total = sum(b) - sum(a)
    return round(100 * (b[3] + b[4] - a[3] - a[4]) / total) if total else -1


def _received(text: str) -> tuple[float, dict[str, int]]:
    """The isp server's clock and what it had received from each phone then (``%up``
    line)."""
    line = next(line for line in text.splitlines() if line.startswith("%up "))
    answer = json.loads(line[4:])
    return float(answer["at"]), {str(k): int(v) for k, v in answer["bytes"].items()}


def _clock(text: str) -> float:
    """The guest's clock when the counters were read (``%%`` line)."""
    return next(float(line[2:]) for line in text.splitlines() if line.startswith("%%"))


def loaded_run(node: BootedNode, load: Load, seconds: int = RUN_SECONDS,
               warm: int = WARM_SECONDS) -> Run:
    """Every phone of ``load`` at the same time: each client starts its clock on one
    signal, given once all of them are up; CAKE's and the isp server's counters, and the
    guest's CPU time, are read at the end of the warm-up and :data:`TAIL_SECONDS` before
    the end, inside every client's window (two timers from that signal: a slow first
    reading under load must not push the second past the downloads' end)."""
    c = f"python3 {DIR}/client.py"
    counters = ("{ date +%%%%%s.%N; tc -s -j qdisc show dev ifb-mh0 2>/dev/null; echo; "
                "echo \"%up $(ip netns exec isp curl -s http://198.18.0.80/received)\"; "
                "ip netns exec isp nstat -asz TcpOutSegs TcpRetransSegs TcpExtTCPTimeouts | "
                "sed 's/^/%/'; head -1 /proc/stat | sed 's/^/%/'; }")
    clients = " ".join(f"ip netns exec {phone} {c} {mode} {seconds} {warm} {LIGHT_EVERY} "
                       f"{phone} >{phone}.out &" for phone, mode in load.items())
    ready = (f"i=0; until [ $(ls *.ready 2>/dev/null | wc -l) -ge {len(load)} ]; do "
             "i=$((i+1)); [ $i -gt 1200 ] && { ls *.ready; echo phones not up in 120 s; exit 1; }; "
             "sleep 0.1; done; touch go")
    out = node.sh(
        f"cd {DIR} && rm -f go *.ready && ({clients} {ready}; "
        f"{{ sleep {warm}; {counters} >q0.txt; }} & "
        f"{{ sleep {seconds - TAIL_SECONDS}; {counters} >q1.txt; }} & wait) && "
        + " && ".join(f"echo {phone} $(cat {phone}.out)" for phone in load)
        + " && echo '#' && cat q0.txt && echo '#' && cat q1.txt", timeout=seconds + 180)
    lines, first, last = out.split("\n#\n")
    kbit: dict[str, float] = {}
    latencies: list[float | None] = []
    for line in lines.splitlines():
        phone, result = line.split(" ", 1)
        answer = json.loads(result)
        if "kbit_per_s" in answer:
            kbit[phone] = answer["kbit_per_s"]
        elif "latencies_ms" in answer:
            latencies += answer["latencies_ms"]
        else:  # uploaded: what the isp's server received from it over the window
            (at0, up0), (at1, up1) = _received(first), _received(last)
            kbit[phone] = (up1.get(phone, 0) - up0.get(phone, 0)) * 8 / 1000 / (at1 - at0)
    before, after = cake_counters(_json(first)), cake_counters(_json(last))
    window = {key: after[key] - before[key] for key in after} if before and after else {}
    if window:
        window["seconds"] = _clock(last) - _clock(first)
    start, end = tcp_counters(first), tcp_counters(last)
    server = {key: end[key] - start.get(key, 0) for key in end}
    server["guest_idle_pct"] = _idle_pct(first, last)
    return Run(kbit, latencies, window, server)


def both_loads(node: BootedNode) -> dict[str, Run]:
    """The nine light phones alone (idle), then the issue's two loads, one after the
    other; then the ten phones uploading."""
    return {"idle": loaded_run(node, IDLE, IDLE_SECONDS, 2),
            "one greedy": loaded_run(node, ONE_GREEDY),
            "ten greedy": loaded_run(node, TEN_GREEDY),
            "ten uploading": loaded_run(node, TEN_UPLOADING)}


def tear_down(node: BootedNode) -> None:
    """Remove phones, isp, ifb; restore node.toml; restart the agent on it (best effort
    for the removals, so that a failed step still cleans up)."""
    run = node.vm.run  # type: ignore[attr-defined]
    kills = " ".join(f"{DIR}/{p}.wpa.pid" for p in PHONES) + f" {DIR}/server.pid"
    run(f"for f in {kills}; do [ -f $f ] && kill $(cat $f); done; "
        + "; ".join(f"ip netns del {p}" for p in (*PHONES, "isp")) +
        "; ip link del ifb-mh0; ip link del up0; "
        "[ -f /etc/meshhub/node.toml.fair ] && mv /etc/meshhub/node.toml.fair "
        f"/etc/meshhub/node.toml; rm -rf {DIR}; systemctl restart meshhub-agent", timeout=120)
    # The access point opens last: the node is as the other steps expect it again.
    run("for i in $(seq 300); do iw dev wlan0 info 2>/dev/null | grep -q 'type AP' && exit 0;"
        " sleep 1; done; exit 1", timeout=330)


def measure(node: BootedNode) -> Figures:
    """The whole step: the reference without CAKE, then with; always torn down."""
    seconds: dict[str, float] = {}
    began = time.monotonic()

    def lap(name: str) -> None:
        nonlocal began
        now = time.monotonic()
        seconds[name], began = now - began, now

    try:
        set_up(node)
        off = set_uplink(node, 0)
        assert off.startswith("off:"), off
        lap("gateway")
        connect_phones(node)
        lap("phones")
        without = both_loads(node)
        lap("reference")
        count_associations(node)
        fairness = set_uplink(node, SHAPED_KBIT)
        reassociated(node)
        accept_phones(node)
        lap("cake")
        with_cake = both_loads(node)
        qdisc = node.sh("tc -s qdisc show dev ifb-mh0; tc -s qdisc show dev up0")
        networkd = {fields[1]: fields[-1] for fields in map(str.split, node.sh(
            "networkctl list --no-legend --no-pager").splitlines()) if len(fields) >= 5}
        lap("loaded")
        return Figures(without, with_cake, qdisc, networkd, fairness, seconds)
    finally:
        tear_down(node)
        lap("teardown")
        print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))


__all__ = ["Figures", "Run", "measure", "percentile"]
