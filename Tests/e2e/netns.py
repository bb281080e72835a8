"""`ip` for the tests that build network namespaces and veth pairs (multi-node DP and EP, Ray), and a namespace
linked to this one (`linked_namespace`)."""
import contextlib
import os
import shutil
import signal
import subprocess


def ip(*args, check=True):
    """Runs `ip ARGS` (30 s bound); raises with its stderr when it fails and `check` is set."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


@contextlib.contextmanager
def linked_namespace(prefix, subnet):
    """A network namespace `<prefix>n<tag>` joined to this one by a veth pair: this side `<subnet>.1`, the
    namespace `<subnet>.2` (`subnet`: three octets). Yields (namespace, its interface, this side's address).
    Skips the test, with a printed reason, where `ip` or namespaces are not permitted; on exit kills what runs
    in the namespace and removes the pair and the namespace."""
    import pytest

    if shutil.which("ip") is None:
        print("skipping: the ip command (iproute2) is not installed")
        pytest.skip("the ip command (iproute2) is not installed")
    tag = os.getpid() % 100000
    ns, host_if, ns_if = f"{prefix}n{tag}", f"{prefix}{tag}h", f"{prefix}{tag}n"
    probe = ip("netns", "add", ns, check=False)
    if probe.returncode != 0:
        reason = f"network namespaces are not permitted here: {probe.stderr.strip()}"
        print("skipping:", reason)
        pytest.skip(reason)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        ip("addr", "add", f"{subnet}.1/24", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", ns, "addr", "add", f"{subnet}.2/24", "dev", ns_if)
        ip("-n", ns, "link", "set", ns_if, "up")
        ip("-n", ns, "link", "set", "lo", "up")
    except RuntimeError as e:
        ip("link", "del", host_if, check=False)
        ip("netns", "del", ns, check=False)
        print("skipping:", e)
        pytest.skip(f"cannot link a network namespace: {e}")
    try:
        yield ns, ns_if, f"{subnet}.1"
    finally:
        for pid in ip("netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        ip("link", "del", host_if, check=False)
        ip("netns", "del", ns, check=False)
