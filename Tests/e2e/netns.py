"""`ip` for the tests that build network namespaces and veth pairs (multi-node DP, Ray)."""
import subprocess


def ip(*args, check=True):
    """Runs `ip ARGS` (30 s bound); raises with its stderr when it fails and `check` is set."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r
