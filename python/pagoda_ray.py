"""Pagoda's bridge to a Ray cluster (Ray has no Swift API).

`pagoda serve ... --data-parallel-backend ray` and `--distributed-executor-backend ray` run this file with
`python3`; it connects to the running cluster (`RAY_ADDRESS`, else `address="auto"`), reserves placement
groups, starts one actor per Pagoda process (each actor runs `pagoda engine-core` / `pagoda worker` on its
node as a child process) and reports what happens back to Pagoda. Ray is used for placement, process
lifetime and liveness only; Pagoda's processes talk to each other over their own transports.

Two modes:

* `session`: a conversation over stdin/stdout, one JSON object per line (protocol version 1; the Swift
  side is `RayCluster`). Requests: `place`, `start`, `shutdown`. Events: `connected`, `placed`,
  `started`, `exited`, `error`, `stopped`. stdout carries nothing else (Ray's own output goes to stderr).
  End of stdin is a shutdown: the placement groups and actors of this session are removed.
* `exec --placement-group NAME --bundle I [--stdin-to-process] -- ARGV...`: runs ARGV in an actor placed in
  bundle I of a placement group a session made, and lives as long as that process: its exit status is the
  process's (128 + signal for a signal), SIGTERM stops it. It is the launch prefix of a tensor/pipeline
  worker. `--stdin-to-process`: this helper's stdin, read to its end, becomes the process's stdin (how a
  worker on another node gets the deployment's secret, never in argv).

Actors are created with max_restarts=0: Ray restarts nothing behind Pagoda's back.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

PROTOCOL_VERSION = 1
NAMESPACE = "pagoda"
STRATEGIES = ("strict", "fill", "span")


class PlacementError(Exception):
    """A placement the cluster cannot satisfy; the message names what is missing."""


# ---------------------------------------------------------------------------------------------------------
# Planning (pure: unit-tested without a cluster)


def fits(available, bundle, count):
    """How many of `count` bundles `available` (resource -> amount) can hold."""
    n = count
    for name, amount in bundle.items():
        if amount <= 0:
            continue
        n = min(n, int(available.get(name, 0.0) // amount + 1e-9))
    return max(n, 0)


def plan_ranks(nodes, ranks, local_ranks, bundles_per_rank, bundle, strategy):
    """The node of each data-parallel rank: a list of node ids (rank order), or None per rank for `span`
    (Ray packs that rank's bundles over as many nodes as it needs).

    `nodes`: [{"node_id", "ip", "available": {resource: amount}}], the head node first.
    strict: every node used holds exactly `local_ranks` ranks (the head's count is --data-parallel-size-local;
    a node that cannot hold that many is passed over). fill: every node, head first, holds as many as fit.
    span: each rank is one placement group that may span nodes.
    """
    if strategy not in STRATEGIES:
        raise PlacementError(f"unknown pack strategy '{strategy}': must be one of {', '.join(STRATEGIES)}")
    if ranks < 1 or bundles_per_rank < 1:
        raise PlacementError("nothing to place")
    need = ", ".join(f"{k}: {v:g}" for k, v in sorted(bundle.items()))
    if strategy == "span":
        total = {}
        for n in nodes:
            for k, v in n["available"].items():
                total[k] = total.get(k, 0.0) + v
        if fits(total, bundle, ranks * bundles_per_rank) < ranks * bundles_per_rank:
            raise PlacementError(
                f"cannot place {ranks} data-parallel rank(s) of {bundles_per_rank} bundle(s) {{{need}}} "
                f"(strategy span): the cluster has {describe(total)} free")
        return [None] * ranks
    plan = []
    for i, n in enumerate(nodes):
        if len(plan) == ranks:
            break
        room = fits(n["available"], bundle, ranks * bundles_per_rank) // bundles_per_rank
        if strategy == "strict":
            want = local_ranks if local_ranks is not None else room
            if i == 0 and local_ranks is not None and room < local_ranks:
                raise PlacementError(
                    f"the head node {n['ip']} cannot hold --data-parallel-size-local {local_ranks} rank(s) of "
                    f"{bundles_per_rank} bundle(s) {{{need}}} (strategy strict): it has {describe(n['available'])} free")
            if room < want or want == 0:
                continue
            take = want
        else:
            take = room
        take = min(take, ranks - len(plan))
        plan.extend([n["node_id"]] * take)
    if len(plan) < ranks:
        free = "; ".join(f"{n['ip']}: {describe(n['available'])}" for n in nodes) or "no nodes"
        per = f", {local_ranks} per node" if strategy == "strict" and local_ranks is not None else ""
        raise PlacementError(
            f"cannot place data-parallel rank(s) {len(plan)}..{ranks - 1}: each needs {bundles_per_rank} bundle(s) "
            f"{{{need}}} on one node (strategy {strategy}{per}); free: {free}")
    return plan


def describe(resources):
    shown = {k: v for k, v in resources.items() if not k.startswith("node:") and k not in ("memory", "object_store_memory")}
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(shown.items())) + "}"


def exit_reason(code):
    """A child's exit, as Pagoda's logs put it."""
    if code is None:
        return "is running"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


def placement_group_name(job, rank):
    return f"pagoda-{job}-dp{rank}"


# ---------------------------------------------------------------------------------------------------------
# Ray (imported lazily: the planning above is tested without it)


def connect(address):
    import ray

    ray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto", namespace=NAMESPACE,
             log_to_driver=False, logging_level="ERROR", configure_logging=False)
    return ray


def process_actor_class(ray):
    @ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0, max_concurrency=4)
    class PagodaProcess:
        """One Pagoda process (engine core or worker) on this actor's node, its child."""

        def __init__(self):
            self.proc = None

        def start(self, argv, env, stdin_data=None):
            """Starts the process; `stdin_data` (bytes): what it reads on its stdin (a pipe closed after
            them), else its stdin is /dev/null."""
            full = dict(os.environ)
            full.update(env or {})
            piped = stdin_data is not None
            self.proc = subprocess.Popen(argv, env=full, stdin=subprocess.PIPE if piped else subprocess.DEVNULL)
            if piped:
                self.proc.stdin.write(stdin_data)
                self.proc.stdin.close()
            return {"pid": self.proc.pid, "node_ip": ray.util.get_node_ip_address()}

        def wait(self):
            return self.proc.wait()

        def stop(self, grace):
            p = self.proc
            if p is None or p.poll() is not None:
                return p.returncode if p else None
            p.terminate()
            try:
                return p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                return p.wait()

    return PagodaProcess


def first_line(e):
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class Session:
    """The `session` mode: placement groups and actors of one Pagoda server, driven over stdin/stdout."""

    def __init__(self, out):
        self.out = out
        self.out_lock = threading.Lock()
        self.ray = None
        self.actor_class = None
        self.groups = {}  # rank -> placement group
        self.actors = {}  # rank -> actor handle
        self.waits = {}  # object ref -> rank
        self.lock = threading.Lock()
        self.stopping = False

    def emit(self, **event):
        with self.out_lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def run(self, address):
        try:
            self.ray = connect(address)
        except Exception as e:  # noqa: BLE001 - any failure to connect is reported, not raised
            self.emit(event="error", message=f"cannot connect to the Ray cluster "
                      f"({address or os.environ.get('RAY_ADDRESS') or 'auto'}): {first_line(e)}")
            return 1
        self.actor_class = process_actor_class(self.ray)
        nodes = self.nodes()
        self.emit(event="connected", version=PROTOCOL_VERSION, head_ip=self.ray.util.get_node_ip_address(),
                  nodes=[{"node_id": n["node_id"], "ip": n["ip"]} for n in nodes])
        threading.Thread(target=self.watch, daemon=True).start()
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                request = json.loads(line)
                op = request["op"]
            except (ValueError, KeyError, TypeError):
                self.emit(event="error", message=f"malformed request: {line[:200]}")
                continue
            if op == "shutdown":
                break
            try:
                if op == "place":
                    self.place(request)
                elif op == "start":
                    self.start(request)
                else:
                    self.emit(event="error", message=f"unknown op '{op}'")
            except PlacementError as e:
                self.emit(event="error", message=str(e))
            except Exception as e:  # noqa: BLE001 - reported to Pagoda, which decides
                self.emit(event="error", message=f"{op} failed: {first_line(e)}")
        self.shutdown()
        return 0

    def nodes(self):
        """Live nodes, this driver's node (the head of the deployment) first, with their free resources."""
        ray = self.ray
        me = ray.util.get_node_ip_address()
        from ray._private.state import available_resources_per_node

        per_node = available_resources_per_node()
        nodes = []
        for n in ray.nodes():
            if not n.get("Alive"):
                continue
            nid = n["NodeID"]
            available = per_node.get(nid, n.get("Resources", {}))
            nodes.append({"node_id": nid, "ip": n["NodeManagerAddress"], "available": dict(available)})
        nodes.sort(key=lambda n: (n["ip"] != me, n["ip"]))
        return nodes

    def place(self, request):
        from ray.util.placement_group import placement_group, remove_placement_group

        ranks = int(request["ranks"])
        first = int(request.get("first_rank", 0))
        per_rank = int(request["bundles_per_rank"])
        bundle = {k: float(v) for k, v in request["bundle"].items()}
        strategy = request.get("strategy", "strict")
        timeout = float(request.get("timeout_s", 60))
        job = request["job"]
        nodes = self.nodes()
        plan = plan_ranks(nodes, ranks, request.get("local_ranks"), per_rank, bundle, strategy)
        ip_of = {n["node_id"]: n["ip"] for n in nodes}
        made = []
        for i, node in enumerate(plan):
            rank = first + i
            bundles = []
            for _ in range(per_rank):
                b = dict(bundle)
                if node is not None:
                    b[f"node:{ip_of[node]}"] = 0.001
                bundles.append(b)
            pg = placement_group(bundles, strategy="STRICT_PACK" if node is not None else "PACK",
                                 name=placement_group_name(job, rank))
            made.append((rank, pg))
            self.groups[rank] = pg
        deadline = time.monotonic() + timeout
        pending = []
        for rank, pg in made:
            try:
                self.ray.get(pg.ready(), timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - GetTimeoutError: not placed in time
                pending.append(rank)
        if pending:
            for rank, pg in made:
                remove_placement_group(pg)
                self.groups.pop(rank, None)
            raise PlacementError(
                f"placement groups of data-parallel rank(s) {', '.join(map(str, pending))} not placed within "
                f"{timeout:g} s: each needs {per_rank} bundle(s) {describe(bundle)} (strategy {strategy}); "
                f"free: {'; '.join(n['ip'] + ': ' + describe(n['available']) for n in nodes)}")
        table = self.ray.util.placement_group_table()
        placed = []
        for rank, pg in made:
            info = table.get(pg.id.hex(), {})
            bundle_nodes = info.get("bundles_to_node_id", {})
            ips = [ip_of.get(bundle_nodes.get(b), "") for b in range(per_rank)]
            placed.append({"rank": rank, "placement_group": placement_group_name(job, rank), "node_ips": ips})
        self.emit(event="placed", ranks=placed)

    def start(self, request):
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        rank = int(request["rank"])
        pg = self.groups.get(rank)
        if pg is None:
            raise PlacementError(f"rank {rank} has no placement group")
        actor = self.actor_class.options(
            name=f"{placement_group_name(request['job'], rank)}-engine",
            scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)).remote()
        info = self.ray.get(actor.start.remote(request["argv"], request.get("env", {})), timeout=120)
        with self.lock:
            self.actors[rank] = actor
            self.waits[actor.wait.remote()] = rank
        self.emit(event="started", rank=rank, pid=info["pid"], node_ip=info["node_ip"])

    def watch(self):
        """Reports every process that ends and every actor that dies (its node lost, or killed)."""
        while True:
            with self.lock:
                refs = list(self.waits)
            if not refs:
                time.sleep(0.2)
                continue
            done, _ = self.ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in done:
                with self.lock:
                    rank = self.waits.pop(ref, None)
                    stopping = self.stopping
                if rank is None or stopping:
                    continue
                try:
                    reason = f"its process {exit_reason(self.ray.get(ref))}"
                except Exception as e:  # noqa: BLE001 - RayActorError and the like: the actor or its node died
                    reason = f"its Ray actor died: {first_line(e)}"
                self.emit(event="exited", rank=rank, reason=reason)

    def shutdown(self):
        from ray.util.placement_group import remove_placement_group

        with self.lock:
            self.stopping = True
            actors = dict(self.actors)
        stops = {r: a.stop.remote(5) for r, a in actors.items()}
        for r, ref in stops.items():
            try:
                self.ray.get(ref, timeout=10)
            except Exception:  # noqa: BLE001 - already dead
                pass
        for a in actors.values():
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        for pg in self.groups.values():
            try:
                remove_placement_group(pg)
            except Exception:  # noqa: BLE001
                pass
        self.emit(event="stopped", actors=len(actors), placement_groups=len(self.groups))
        self.groups.clear()
        self.ray.shutdown()


def run_exec(args):
    """The `exec` mode: one process in one bundle of a session's placement group."""
    _die_with_parent()
    stdin_data = sys.stdin.buffer.read() if args.stdin_to_process else None
    try:
        ray = connect(args.address)
        from ray.util import get_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = get_placement_group(args.placement_group)
        actor = process_actor_class(ray).options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=args.bundle)).remote()
        info = ray.get(actor.start.remote(args.argv, {}, stdin_data), timeout=120)
    except Exception as e:  # noqa: BLE001
        print(f"pagoda_ray exec: cannot start {args.argv[:2]} in bundle {args.bundle} of "
              f"{args.placement_group}: {first_line(e)}", file=sys.stderr)
        return 1
    print(f"pagoda_ray exec: pid {info['pid']} on {info['node_ip']} (bundle {args.bundle} of "
          f"{args.placement_group})", file=sys.stderr)

    def stop(signum, _frame):
        try:
            ray.get(actor.stop.remote(5), timeout=10)
        except Exception:  # noqa: BLE001
            pass
        ray.kill(actor, no_restart=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from ray.exceptions import GetTimeoutError

    done = actor.wait.remote()
    while True:
        try:
            code = ray.get(done, timeout=1)  # in slices, so that SIGTERM's handler runs
            break
        except GetTimeoutError:
            continue
        except Exception as e:  # noqa: BLE001 - the actor (or its node) died
            print(f"pagoda_ray exec: the actor died: {first_line(e)}", file=sys.stderr)
            return 1
    ray.kill(actor, no_restart=True)
    return 128 - code if code < 0 else code


def _die_with_parent():
    """PR_SET_PDEATHSIG: an exec helper ends (and stops its actor) with the engine core that started it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pagoda_ray", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else auto)")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("session", help="drive placement groups and actors over stdin/stdout (JSON lines)")
    ex = sub.add_parser("exec", help="run one process in a bundle of a placement group")
    ex.add_argument("--placement-group", required=True)
    ex.add_argument("--bundle", type=int, required=True)
    ex.add_argument("--stdin-to-process", action="store_true",
                    help="hand this helper's stdin (read to its end) to the process's stdin")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.mode == "exec":
        if args.argv and args.argv[0] == "--":
            args.argv = args.argv[1:]
        if not args.argv:
            parser.error("exec needs a command after --")
        return run_exec(args)
    # Signals to the server's process group are the server's to handle: it asks for the shutdown, or its end
    # closes our stdin; either way the placement groups and actors are removed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The protocol owns stdout; Ray's and anything else's output goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return Session(out).run(args.address)


if __name__ == "__main__":
    sys.exit(main())
