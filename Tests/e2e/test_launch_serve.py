"""`pagoda launch` with 2 real `pagoda serve` ranks of the small model: starts, answers through the proxy,
stops cleanly."""
import re
import signal

import openai

from router_harness import SERVE_LIMITS, Proc, free_port_range, start_proxy
from test_launch import pid_alive, rank_pids, wait_for


def test_two_serve_ranks_answer_through_the_proxy_and_stop(pagoda, small_model, tmp_path):
    start = free_port_range(2)
    launcher = Proc([pagoda, "launch", small_model, "--dp-size", "2", "--host", "127.0.0.1", "--start-port", str(start),
                     "--startup-timeout", "240", "--shutdown-timeout", "10", "--", *SERVE_LIMITS], tmp_path, "launch-serve")
    proxy = None
    try:
        wait_for(lambda: "Front them with" in launcher.output() or not launcher.alive(), 300, launcher.output)
        out = launcher.output()
        assert launcher.alive(), out
        assert re.search(r"^\[rank 0\] ", out, re.M) and re.search(r"^\[rank 1\] ", out, re.M), out
        pids = rank_pids(out)
        proxy, pport = start_proxy(pagoda, tmp_path, [start, start + 1])
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{pport}/v1", api_key="none", max_retries=0, timeout=120)
        model = c.models.list().data[0].id
        for i in range(4):
            assert c.completions.create(model=model, prompt=f"Hello {i}", max_tokens=4, temperature=0).choices
        launcher.send(signal.SIGTERM)
        assert launcher.popen.wait(timeout=60) == 0, launcher.output()
        assert not any(pid_alive(p) for p in pids)
    finally:
        if proxy:
            proxy.stop()
        launcher.stop()
