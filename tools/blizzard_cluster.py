#!/usr/bin/env python3
"""Local Blizzard cluster launcher (standard library only).

Runs N nodes of one node variant on loopback, pools in /dev/shm, each node's
pid and log in a run directory. Used by the README's demo, the integration
tests and developers:

  blizzard_cluster.py gen-config --nodes 3 --base-port 7100 --dir /dev/shm/bz > c.ini
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz start --binary bazel-bin/node/blizzard_tcp_logical
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz status
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz kill 2 [--signal KILL]
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz restart 2
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz wait-leader
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz stop

Network-namespace mode (DPDK variants; root): every node in its own network
namespace, its DPDK port one end of a veth pair whose other end is a port of a
Linux bridge in a namespace of its own, and a second veth pair to the root
namespace that carries the client port (kernel TCP) -- see NetnsLayout:

  blizzard_cluster.py gen-config --netns bz1 --nodes 3 --dir /dev/shm/bz1 > c.ini
  blizzard_cluster.py --config c.ini --netns bz1 start --binary .../blizzard_dpdk_logical
  blizzard_cluster.py --config c.ini partition 2      # node 2's bridge port down
  blizzard_cluster.py --config c.ini heal             # every bridge port up
  blizzard_cluster.py --config c.ini stop             # nodes, then the namespaces
  blizzard_cluster.py --config c.ini clean            # pools and any leftovers

The same network carries a TCP variant (blizzard_tcp_*): its peer traffic then
crosses the same veths and bridge (host routes over the DPDK link), a
like-for-like baseline for DPDK. `gen-config --netns NAME --mtu-bytes 9000`
writes mtu_bytes and a matching af_packet ring (framesz) into the file; the
launcher sets that MTU on every veth of the bridge link.

Membership (node/README.md, "Membership changes"): the cluster file lists
every node that may ever join; `gen-config --voters 1,2,3` makes the others
start as non-members that wait to be added.

  blizzard_cluster.py --config c.ini --run-dir /tmp/bz start --binary B --nodes 1,2,3
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz restart 4      # start node 4
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz add-learner 4
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz promote 4      # once caught up
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz remove 1
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz transfer 2
  blizzard_cluster.py --config c.ini --run-dir /tmp/bz members

It only ever signals processes whose pid file it wrote and whose command line
still names this cluster file.
"""

import argparse
import configparser
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time


class RespError(Exception):
    """An error reply from the server (-ERR ..., -MOVED ...)."""


class Resp:
    """A minimal blocking RESP2 client."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise ConnectionError("bad reply line %r" % line)

    def pipeline(self, commands):
        """Sends all commands, returns the replies (errors as RespError values)."""
        self.sock.sendall(b"".join(self.encode(c) for c in commands))
        return [self.read_reply() for _ in commands]

    def command(self, *args):
        reply = self.pipeline([args])[0]
        if isinstance(reply, RespError):
            raise reply
        return reply


def parse_info(text):
    if isinstance(text, bytes):
        text = text.decode()
    info = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            info[k] = v
    return info


def gen_config(nodes, base_port, pool_dir, cluster_id=1, host="127.0.0.1",
               log_pool_bytes="256M", data_pool_bytes="256M", tick_ms=10,
               election_timeout_ticks=15, heartbeat_interval_ticks=2, hosts=None,
               node_extra=None, cluster_extra=()):
    lines = [
        "# Generated by tools/blizzard_cluster.py gen-config",
        "[cluster]",
        "id = %d" % cluster_id,
        "tick_ms = %d" % tick_ms,
        "election_timeout_ticks = %d" % election_timeout_ticks,
        "heartbeat_interval_ticks = %d" % heartbeat_interval_ticks,
    ] + list(cluster_extra) + [""]
    for i in range(1, nodes + 1):
        lines += [
            "[node.%d]" % i,
            "host = %s" % (hosts[i] if hosts else host),
            "client_port = %d" % (base_port + i),
            "peer_port = %d" % (base_port + 100 + i),
            "log_pool = %s/node%d/log.pool" % (pool_dir, i),
            "log_pool_bytes = %s" % log_pool_bytes,
            "data_pool = %s/node%d/data.pool" % (pool_dir, i),
            "data_pool_bytes = %s" % data_pool_bytes,
        ] + (node_extra[i] if node_extra else []) + [""]
    return "\n".join(lines)


NETNS_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")


def check_netns_name(name):
    """Names become interface names (<name>d9: at most 15 characters)."""
    if not NETNS_NAME_RE.match(name or ""):
        raise SystemExit("netns name %r: 1-10 characters [a-z0-9], starting "
                         "with a letter" % name)
    return name


class NetnsLayout:
    """The network of a cluster whose nodes live in network namespaces.

    Everything is named after the cluster's netns name NAME, so that it can be
    found and removed after a crash by NAME alone:
      namespaces   NAMEn<i> (node i), NAMEsw (the switch)
      bridge       NAMEbr in NAMEsw
      DPDK link    NAMEd<i> (node i's port, no IP address) <-> NAMEb<i> (a
                   port of NAMEbr); `partition i` sets NAMEb<i> down
      client link  NAMEc<i> in NAMEn<i>, address = node i's `host`, /30 <->
                   NAMEh<i> in the root namespace, address host - 1: clients
                   in the root namespace reach host:client_port by the
                   connected route of the /30
      EAL files    /var/run/dpdk/NAMEn<i> (gen-config's --file-prefix)
    The cluster file's `host` doubles as the IPv4 address in the DPDK frames
    (no kernel routing involved there) and must be the third address of a
    /30 (gen-config --netns picks 10.X.Y.(4i+2)).

    mtu: the MTU of both ends of every DPDK link (the cluster file's
    mtu_bytes; None: the kernel's 1500). kernel_peers (up()): for a TCP
    variant, node i reaches node j's host by a /32 route over NAMEd<i>, so
    peer traffic crosses the same veths and bridge as DPDK frames do (ARP
    answers for the host address from any interface; the client link keeps
    its own /30). Not for DPDK: the kernel would answer DPDK's UDP frames to
    the host address with ICMP over that route.
    """

    def __init__(self, name, nodes, mtu=None):
        self.name = check_netns_name(name)
        self.nodes = nodes  # {id: Node}
        self.mtu = mtu

    def ns(self, nid):
        return "%sn%d" % (self.name, nid)

    @property
    def switch_ns(self):
        return "%ssw" % self.name

    def bridge_port(self, nid):
        return "%sb%d" % (self.name, nid)

    def eal_prefix(self, nid):
        return "%sn%d" % (self.name, nid)

    @staticmethod
    def _ip(*args, check=True):
        out = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args), out.stderr.strip()))
        return out

    def _sysctl(self, ns, key, value):
        # Best effort: only keeps the kernel's own chatter off the wire.
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "%s=%s" % (key, value)],
                       capture_output=True)

    def existing_namespaces(self):
        out = self._ip("netns", "list", check=False).stdout
        names = {line.split()[0] for line in out.splitlines() if line.strip()}
        ours = {self.switch_ns} | {"%sn%d" % (self.name, i) for i in range(1, 10)}
        return sorted(names & ours)

    def up(self, kernel_peers=False):
        """Creates the whole network (after removing leftovers of NAME)."""
        self.down()
        name, sw = self.name, self.switch_ns
        bridge = "%sbr" % name
        self._ip("netns", "add", sw)
        self._ip("-n", sw, "link", "set", "lo", "up")
        self._ip("-n", sw, "link", "add", "name", bridge, "type", "bridge")
        self._ip("-n", sw, "link", "set", bridge, "up")
        self._sysctl(sw, "net.ipv6.conf.all.disable_ipv6", 1)
        # A plain L2 switch: without these, br_netfilter (if loaded) runs
        # every bridged frame through the iptables hooks (measured with perf:
        # a visible share of the per-frame kernel cost).
        for table in ("iptables", "ip6tables", "arptables"):
            self._sysctl(sw, "net.bridge.bridge-nf-call-%s" % table, 0)
        for nid in sorted(self.nodes):
            ns, host = self.ns(nid), self.nodes[nid].host
            parts = [int(p) for p in host.split(".")]
            if parts[3] % 4 != 2:
                raise RuntimeError("node %d: host %s is not the node address of a /30 "
                                   "(x.x.x.4k+2); use gen-config --netns" % (nid, host))
            root_side = ".".join(str(p) for p in parts[:3] + [parts[3] - 1])
            dev, port = "%sd%d" % (name, nid), self.bridge_port(nid)
            cdev, hdev = "%sc%d" % (name, nid), "%sh%d" % (name, nid)
            self._ip("netns", "add", ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 1)
            self._sysctl(ns, "net.ipv6.conf.default.disable_ipv6", 1)
            # The DPDK port: no IP address (the kernel would answer our UDP
            # frames with ICMP), bridged to the others.
            self._ip("-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port,
                     "netns", sw)
            if self.mtu:
                self._ip("-n", ns, "link", "set", dev, "mtu", str(self.mtu))
                self._ip("-n", sw, "link", "set", port, "mtu", str(self.mtu))
            self._ip("-n", sw, "link", "set", port, "master", bridge)
            self._ip("-n", sw, "link", "set", port, "up")
            self._ip("-n", ns, "link", "set", dev, "up")
            if kernel_peers:
                for table in ("all", "default", dev):
                    self._sysctl(ns, "net.ipv4.conf.%s.rp_filter" % table, 0)
                for other in sorted(self.nodes):
                    if other != nid:
                        self._ip("-n", ns, "route", "add", "%s/32" % self.nodes[other].host,
                                 "dev", dev)
            else:
                # DPDK frames are UDP to the peer's host address, which this
                # namespace holds on its client veth: after af_packet took
                # its copy, the kernel's own stack would also deliver every
                # frame to UDP (no socket: port unreachable) and try to
                # answer with ICMP. A policy rule ahead of the local table
                # drops what arrives on the DPDK port at routing instead
                # (measured: +13-37% cluster throughput, transport/README.md).
                # Packet sockets see frames before routing: DPDK is unaffected.
                self._ip("-n", ns, "rule", "add", "pref", "100", "lookup", "local")
                self._ip("-n", ns, "rule", "del", "pref", "0", "lookup", "local")
                self._ip("-n", ns, "rule", "add", "pref", "10", "iif", dev, "blackhole")
            # The client link to the root namespace.
            self._ip("-n", ns, "link", "add", cdev, "type", "veth", "peer", "name", hdev,
                     "netns", "1")
            self._ip("-n", ns, "addr", "add", "%s/30" % host, "dev", cdev)
            self._ip("-n", ns, "link", "set", cdev, "up")
            self._ip("addr", "add", "%s/30" % root_side, "dev", hdev)
            self._ip("link", "set", hdev, "up")

    def down(self):
        """Removes everything named after NAME; safe to repeat."""
        for ns in self.existing_namespaces():
            # Deleting a namespace deletes its veths, and with them their
            # peers in the root namespace and the switch.
            self._ip("netns", "del", ns, check=False)
        links = self._ip("-o", "link", "show", check=False).stdout
        for nid in range(1, 10):
            hdev = "%sh%d" % (self.name, nid)
            if (" %s@" % hdev) in links or (" %s:" % hdev) in links:
                self._ip("link", "del", hdev, check=False)
            path = "/var/run/dpdk/%s" % self.eal_prefix(nid)
            if os.path.isdir(path):
                subprocess.run(["rm", "-rf", path])

    def wrap(self, nid, argv):
        """argv run inside node nid's namespace (same pid: ip execs it)."""
        return ["ip", "netns", "exec", self.ns(nid)] + argv

    def set_links(self, nids, up):
        for nid in nids:
            if nid not in self.nodes:
                raise SystemExit("no node %d" % nid)
            self._ip("-n", self.switch_ns, "link", "set", self.bridge_port(nid),
                     "up" if up else "down")

    def link_states(self):
        out = {}
        for nid in sorted(self.nodes):
            r = self._ip("-n", self.switch_ns, "-o", "link", "show", self.bridge_port(nid),
                         check=False)
            flags = r.stdout.split("<", 1)[-1].split(">", 1)[0].split(",")
            out[nid] = "up" if r.returncode == 0 and "UP" in flags else "cut"
        return out


def netns_subnet(name):
    """A /24 in 10.200-254.x.0 for cluster NAME not used on this machine."""
    used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                          text=True).stdout
    used += subprocess.run(["ip", "-4", "route", "show"], capture_output=True,
                           text=True).stdout
    digest = hashlib.sha256(name.encode()).digest()
    for i in range(0, 256):
        a = 200 + (digest[0] + i) % 55
        b = (digest[1] + 7 * i) % 256
        prefix = "10.%d.%d." % (a, b)
        if prefix not in used:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 for netns cluster %s" % name)


def af_packet_frame_bytes(mtu_bytes):
    """The af_packet ring frame (framesz = blocksz) that carries mtu_bytes:
    Ethernet header + MTU + the ring's 80 bytes of rx overhead, rounded up
    to whole pages (transport/dpdk/port_mtu.h)."""
    page = 4096
    return (14 + mtu_bytes + 80 + page - 1) // page * page


def gen_netns_config(nodes, base_port, pool_dir, name, mtu_bytes=None, idle_spin_us=None,
                     ack_delay_us=None, **kwargs):
    """gen_config for NetnsLayout: hosts 10.X.Y.(4i+2), MACs, EAL devices.

    Without mtu_bytes: 1500-byte frames (DPDK 22.11's af_packet reports
    max_rx_pktlen = 1518 whatever its ring). With it: mtu_bytes in the file,
    which the transport then uses beyond the PMD's report, and an af_packet
    ring of frames large enough for it; the launcher sets the veth MTU."""
    prefix = netns_subnet(check_netns_name(name))
    hosts = {i: "%s%d" % (prefix, 4 * i + 2) for i in range(1, nodes + 1)}
    ring = ""
    cluster_extra = ["busy_poll = false"]
    if mtu_bytes:
        frame = af_packet_frame_bytes(mtu_bytes)
        ring = ",framesz=%d,blocksz=%d" % (frame, frame)
        cluster_extra.append("mtu_bytes = %d" % mtu_bytes)
    if idle_spin_us is not None:
        cluster_extra.append("idle_spin_us = %d" % idle_spin_us)
    if ack_delay_us is not None:
        cluster_extra.append("ack_delay_us = %d" % ack_delay_us)
    extra = {i: ["mac = 02:00:00:00:00:%02x" % i,
                 "eal_args = --vdev=net_af_packet0,iface=%sd%d%s --file-prefix=%sn%d"
                 % (name, i, ring, name, i)] for i in range(1, nodes + 1)}
    return gen_config(nodes, base_port, pool_dir, hosts=hosts, node_extra=extra,
                      cluster_extra=cluster_extra, **kwargs)


class Node:
    def __init__(self, node_id, host, client_port, log_pool, data_pool):
        self.id = node_id
        self.host = host
        self.client_port = client_port
        self.log_pool = log_pool
        self.data_pool = data_pool


class Cluster:
    def __init__(self, config_path, run_dir, binary=None, netns=None):
        self.config_path = os.path.abspath(config_path)
        self.run_dir = os.path.abspath(run_dir)
        self.binary = binary
        parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
        with open(self.config_path) as f:
            parser.read_file(f)
        self.nodes = {}
        self.mtu_bytes = parser.getint("cluster", "mtu_bytes", fallback=None)
        for section in parser.sections():
            if section.startswith("node."):
                s = parser[section]
                nid = int(section[5:])
                self.nodes[nid] = Node(nid, s["host"], int(s["client_port"]),
                                       s["log_pool"], s["data_pool"])
        if not self.nodes:
            raise SystemExit("%s: no [node.N] sections" % config_path)
        os.makedirs(self.run_dir, exist_ok=True)
        self.netns = self._netns_layout(netns)

    # -- network namespaces (NetnsLayout) ---------------------------------------
    def _netns_layout(self, name):
        """The layout given now, or remembered in the run directory.

        The name is written before anything is created, so a later `stop` or
        `clean` finds what a crashed launcher left."""
        path = os.path.join(self.run_dir, "netns")
        if name:
            with open(path, "w") as f:
                f.write(check_netns_name(name) + "\n")
        elif os.path.exists(path):
            with open(path) as f:
                name = f.read().strip()
        return NetnsLayout(name, self.nodes, self.mtu_bytes) if name else None

    def partition(self, nids):
        self._require_netns().set_links(nids, up=False)

    def heal(self, nids=None):
        self._require_netns().set_links(nids or sorted(self.nodes), up=True)

    def _require_netns(self):
        if self.netns is None:
            raise SystemExit("partition/heal need a cluster started with --netns")
        return self.netns

    # -- processes -----------------------------------------------------------
    def _pid_file(self, nid):
        return os.path.join(self.run_dir, "node%d.pid" % nid)

    def log_file(self, nid):
        return os.path.join(self.run_dir, "node%d.log" % nid)

    def pid(self, nid):
        """The node's pid if it is running and is ours, else None."""
        try:
            with open(self._pid_file(nid)) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        want = ("--config=%s" % self.config_path).encode()
        ident = ("--id=%d" % nid).encode()
        proc = getattr(self, "_children", {}).get(nid)
        if proc is not None and proc.pid == pid:
            # Our own child: ask the kernel, not /proc/<pid>/cmdline, which
            # is empty for a moment while the child is still in exec().
            return pid if proc.poll() is None else None
        if want in cmdline and ident in cmdline:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return None
            except OSError:
                return None
            return pid
        return None

    def start_node(self, nid, env=None):
        if self.pid(nid) is not None:
            return self.pid(nid)
        binary = self.binary
        if binary is None:
            bin_file = os.path.join(self.run_dir, "binary")
            with open(bin_file) as f:
                binary = f.read().strip()
        full_env = dict(os.environ)
        full_env.setdefault("PMEM_IS_PMEM_FORCE", "1")
        if env:
            full_env.update(env)
        log = open(self.log_file(nid), "ab")
        argv = [binary, "--config=%s" % self.config_path, "--id=%d" % nid]
        if self.netns is not None:
            argv = self.netns.wrap(nid, argv)
        proc = subprocess.Popen(
            argv,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=full_env, start_new_session=True)
        log.close()
        with open(self._pid_file(nid), "w") as f:
            f.write("%d\n" % proc.pid)
        self._children = getattr(self, "_children", {})
        self._children[nid] = proc
        return proc.pid

    def _binary_is_dpdk(self):
        binary = self.binary
        if binary is None:
            try:
                with open(os.path.join(self.run_dir, "binary")) as f:
                    binary = f.read().strip()
            except OSError:
                return True  # Unknown: the layout that suits DPDK.
        return "dpdk" in os.path.basename(binary)

    def start(self, nodes=None):
        """Starts `nodes` (default: every node in the file)."""
        if self.binary:
            with open(os.path.join(self.run_dir, "binary"), "w") as f:
                f.write(os.path.abspath(self.binary) + "\n")
        if self.netns is not None and not any(self.pid(n) for n in self.nodes):
            self.netns.up(kernel_peers=not self._binary_is_dpdk())
        for nid in sorted(nodes or self.nodes):
            self.start_node(nid)
        self.wait_ports(nodes=sorted(nodes or self.nodes))

    def wait_ports(self, timeout=30.0, nodes=None):
        deadline = time.time() + timeout
        for nid in nodes or sorted(self.nodes):
            n = self.nodes[nid]
            while True:
                try:
                    socket.create_connection((n.host, n.client_port), timeout=1).close()
                    break
                except OSError:
                    if self.pid(nid) is None:
                        raise RuntimeError("node %d exited (%s); log %s:\n%s" % (
                            nid, self.exit_status(nid), self.log_file(nid),
                            self.tail_log(nid)))
                    if time.time() > deadline:
                        raise RuntimeError("node %d did not open its client port" % nid)
                    time.sleep(0.05)

    def exit_status(self, nid):
        """How a node this object started ended, as far as it can tell."""
        proc = getattr(self, "_children", {}).get(nid)
        if proc is None:
            return "not started by this process"
        try:
            rc = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "still running, but its pid file or command line does not match"
        if rc < 0:
            return "killed by signal %s" % signal.Signals(-rc).name
        return "exit code %d" % rc

    def tail_log(self, nid, lines=20):
        try:
            with open(self.log_file(nid), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def signal_node(self, nid, sig):
        pid = self.pid(nid)
        if pid is None:
            return False
        os.kill(pid, sig)
        return True

    def _reap(self, nid):
        proc = getattr(self, "_children", {}).get(nid)
        if proc is not None:
            try:
                proc.wait(timeout=0)
            except subprocess.TimeoutExpired:
                pass

    def kill(self, nid, sig=signal.SIGKILL, timeout=10.0):
        pid = self.pid(nid)
        if pid is None:
            return False
        os.kill(pid, sig)
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._reap(nid)
            if self.pid(nid) is None:
                return True
            time.sleep(0.02)
        if sig != signal.SIGKILL:
            return self.kill(nid, signal.SIGKILL, timeout)
        raise RuntimeError("node %d (pid %d) did not die" % (nid, pid))

    def stop(self, timeout=10.0):
        for nid in sorted(self.nodes):
            self.signal_node(nid, signal.SIGTERM)
        try:
            for nid in sorted(self.nodes):
                self.kill(nid, signal.SIGTERM, timeout)
        finally:
            if self.netns is not None:
                self.netns.down()

    def remove_pools(self):
        """Removes every node's log and data pools and its snapshot directory
        (node/SNAPSHOT.md: <data_pool>.snapshots). A snapshot left behind
        beside fresh pools is a state the node rightly refuses to start from."""
        for n in self.nodes.values():
            for p in (n.log_pool, n.data_pool):
                if os.path.exists(p):
                    os.remove(p)
            snapshots = n.data_pool + ".snapshots"
            if os.path.isdir(snapshots):
                shutil.rmtree(snapshots)

    # -- observation -----------------------------------------------------------
    def client(self, nid, timeout=5.0):
        n = self.nodes[nid]
        return Resp(n.host, n.client_port, timeout)

    def info(self, nid):
        c = self.client(nid, timeout=2.0)
        try:
            return parse_info(c.command("INFO"))
        finally:
            c.close()

    def infos(self):
        out = {}
        for nid in sorted(self.nodes):
            if self.pid(nid) is None:
                continue
            try:
                out[nid] = self.info(nid)
            except (OSError, ConnectionError, RespError):
                pass
        return out

    def leader(self):
        """The id of the leader with the highest term, or None."""
        best = None
        for nid, info in self.infos().items():
            if info.get("role") == "leader":
                term = int(info["term"])
                if best is None or term > best[1]:
                    best = (nid, term)
        return best[0] if best else None

    def wait_leader(self, timeout=30.0, exclude=()):
        deadline = time.time() + timeout
        while time.time() < deadline:
            nid = self.leader()
            if nid is not None and nid not in exclude:
                return nid
            time.sleep(0.05)
        raise RuntimeError("no leader elected within %.0fs" % timeout)

    # -- membership -------------------------------------------------------------
    def admin(self, *args, timeout=30.0):
        """Sends CLUSTER <args> to the leader (following redirects and
        retrying while there is none); returns the reply."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            nid = self.leader()
            if nid is None:
                time.sleep(0.05)
                continue
            try:
                c = self.client(nid, timeout=max(1.0, deadline - time.time()))
                try:
                    reply = c.pipeline([("CLUSTER",) + tuple(str(a) for a in args)])[0]
                finally:
                    c.close()
            except (OSError, ConnectionError) as e:
                last = e
                time.sleep(0.05)
                continue
            if isinstance(reply, RespError):
                last = reply
                msg = str(reply)
                if msg.startswith(("MOVED", "CLUSTERDOWN", "TRYAGAIN")) or "retry" in msg or \
                        "not leader" in msg or "uncommitted" in msg or "committed an entry" in msg:
                    time.sleep(0.1)
                    continue
                raise reply
            return reply
        raise RuntimeError("CLUSTER %s did not succeed in %.0fs: %s" % (
            " ".join(str(a) for a in args), timeout, last))

    def members(self, nid=None):
        """{'voters': [...], 'learners': [...], 'leader_id': n} as node nid sees it."""
        nid = nid or self.wait_leader()
        c = self.client(nid)
        try:
            info = parse_info(c.command("CLUSTER", "MEMBERS"))
        finally:
            c.close()
        ids = lambda v: [int(x) for x in v.split(",") if x]  # noqa: E731
        return {"voters": ids(info["voters"]), "learners": ids(info["learners"]),
                "leader_id": int(info["leader_id"])}

    def wait_caught_up(self, timeout=60.0):
        """Waits until every running node has applied the same index."""
        deadline = time.time() + timeout
        while True:
            infos = self.infos()
            running = [nid for nid in self.nodes if self.pid(nid) is not None]
            applied = {nid: int(i["applied_index"]) for nid, i in infos.items()}
            if len(applied) == len(running) and len(set(applied.values())) == 1:
                return infos
            if time.time() > deadline:
                raise RuntimeError("nodes did not catch up: %s" % applied)
            time.sleep(0.1)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="cluster INI file")
    ap.add_argument("--run-dir", help="pid and log files (default: beside the config)")
    ap.add_argument("--netns", help="network-namespace mode: the cluster's name "
                    "(remembered in the run directory; see NetnsLayout)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-config", help="print a cluster file for N local nodes")
    g.add_argument("--nodes", type=int, default=3)
    g.add_argument("--base-port", type=int, default=7100)
    g.add_argument("--dir", default="/dev/shm/blizzard", help="pool directory")
    g.add_argument("--cluster-id", type=int, default=1)
    g.add_argument("--netns", dest="gen_netns", metavar="NAME",
                   help="a DPDK cluster file for network-namespace mode")
    g.add_argument("--mtu-bytes", type=int, help="with --netns: mtu_bytes (e.g. 9000) "
                   "and a matching af_packet ring")
    g.add_argument("--idle-spin-us", type=int, help="with --netns: idle_spin_us")
    g.add_argument("--ack-delay-us", type=int, help="with --netns: ack_delay_us")
    g.add_argument("--voters", help="bootstrap voters, e.g. 1,2,3 (default: all nodes)")
    s = sub.add_parser("start", help="start every node (or --nodes)")
    s.add_argument("--binary", required=True, help="node variant binary")
    s.add_argument("--nodes", help="comma-separated node ids to start (default: all)")
    for name, what in (("add-learner", "add a node as a learner"),
                       ("promote", "promote a caught-up learner to voter"),
                       ("remove", "remove a node from the group"),
                       ("transfer", "hand leadership to a voter")):
        m = sub.add_parser(name, help=what)
        m.add_argument("node", type=int)
    sub.add_parser("members", help="print the leader's view of the membership")
    sub.add_parser("stop", help="SIGTERM every node (SIGKILL after 10 s)")
    sub.add_parser("status", help="one line per node")
    k = sub.add_parser("kill", help="kill one node")
    k.add_argument("node", type=int)
    k.add_argument("--signal", default="KILL")
    r = sub.add_parser("restart", help="(re)start one node")
    r.add_argument("node", type=int)
    sub.add_parser("leader", help="print the leader's id")
    w = sub.add_parser("wait-leader", help="wait for a leader, print its id")
    w.add_argument("--timeout", type=float, default=30.0)
    w.add_argument("--exclude", type=int, action="append", default=[])
    c = sub.add_parser("wait-caught-up", help="wait until all nodes applied the same index")
    c.add_argument("--timeout", type=float, default=60.0)
    sub.add_parser("clean", help="remove the pools and snapshot directories (nodes must be stopped) and, in "
                   "netns mode, anything left of the network")
    pa = sub.add_parser("partition", help="netns mode: cut nodes off (bridge port down)")
    pa.add_argument("node", type=int, nargs="+")
    he = sub.add_parser("heal", help="netns mode: reconnect nodes (default: all)")
    he.add_argument("node", type=int, nargs="*")
    sub.add_parser("links", help="netns mode: each node's link state")
    args = ap.parse_args(argv)

    if args.cmd == "gen-config":
        if args.gen_netns:
            print(gen_netns_config(args.nodes, args.base_port, args.dir, args.gen_netns,
                                   mtu_bytes=args.mtu_bytes, idle_spin_us=args.idle_spin_us,
                                   ack_delay_us=args.ack_delay_us,
                                   cluster_id=args.cluster_id))
        else:
            extra = ["voters = %s" % args.voters] if args.voters else ()
            print(gen_config(args.nodes, args.base_port, args.dir, args.cluster_id,
                             cluster_extra=extra))
        return 0
    if not args.config:
        ap.error("--config is required")
    run_dir = args.run_dir or os.path.join(os.path.dirname(os.path.abspath(args.config)), "run")
    cluster = Cluster(args.config, run_dir, getattr(args, "binary", None), args.netns)
    if args.cmd == "start":
        nodes = [int(x) for x in args.nodes.split(",")] if args.nodes else None
        cluster.start(nodes)
        print("started %d nodes; leader: node %d" % (len(nodes or cluster.nodes),
                                                     cluster.wait_leader()))
    elif args.cmd in ("add-learner", "promote", "remove", "transfer"):
        sub = {"add-learner": "ADDLEARNER"}.get(args.cmd, args.cmd.upper())
        print(cluster.admin(sub, args.node))
    elif args.cmd == "members":
        m = cluster.members()
        print("voters %s learners %s leader %d" % (m["voters"], m["learners"], m["leader_id"]))
    elif args.cmd == "stop":
        cluster.stop()
        print("stopped")
    elif args.cmd == "status":
        infos = cluster.infos()
        for nid in sorted(cluster.nodes):
            n = cluster.nodes[nid]
            pid = cluster.pid(nid)
            i = infos.get(nid)
            if pid is None:
                print("node %d  %s:%d  down" % (nid, n.host, n.client_port))
            elif i is None:
                print("node %d  %s:%d  pid %d  not answering" % (nid, n.host, n.client_port, pid))
            else:
                print("node %d  %s:%d  pid %-7d %-9s term %-4s commit %-8s applied %-8s keys %-8s hash %s" % (
                    nid, n.host, n.client_port, pid, i["role"], i["term"], i["commit_index"],
                    i["applied_index"], i["keys"], i["state_hash"]))
    elif args.cmd == "kill":
        sig = getattr(signal, "SIG" + args.signal.upper().replace("SIG", ""))
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            ok = cluster.signal_node(args.node, sig)
        else:
            ok = cluster.kill(args.node, sig)
        print("node %d: %s" % (args.node, "signalled" if ok else "not running"))
        return 0 if ok else 1
    elif args.cmd == "restart":
        cluster.kill(args.node, signal.SIGTERM)
        cluster.start_node(args.node)
        cluster.wait_ports(nodes=[args.node])
        print("node %d restarted" % args.node)
    elif args.cmd == "leader":
        nid = cluster.leader()
        print(nid if nid is not None else "none")
        return 0 if nid is not None else 1
    elif args.cmd == "wait-leader":
        print(cluster.wait_leader(args.timeout, exclude=args.exclude))
    elif args.cmd == "wait-caught-up":
        infos = cluster.wait_caught_up(args.timeout)
        print("applied index %s on %d nodes" % (next(iter(infos.values()))["applied_index"], len(infos)))
    elif args.cmd == "clean":
        if any(cluster.pid(n) for n in cluster.nodes):
            print("stop the cluster first", file=sys.stderr)
            return 1
        cluster.remove_pools()
        if cluster.netns is not None:
            cluster.netns.down()
    elif args.cmd == "partition":
        cluster.partition(args.node)
        print("cut off: %s" % " ".join("node %d" % n for n in args.node))
    elif args.cmd == "heal":
        cluster.heal(args.node)
        print("healed: %s" % (" ".join("node %d" % n for n in args.node) or "all"))
    elif args.cmd == "links":
        cluster._require_netns()
        for nid, state in cluster.netns.link_states().items():
            print("node %d  %s" % (nid, state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
