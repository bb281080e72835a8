"""Unit tests of python/pagoda_ray.py, the helper that drives Ray for Pagoda: the placement planner (vLLM's
strict/fill/span pack strategies, and the errors naming what is missing) and the exit descriptions. No
cluster is needed: the planner is pure and the module imports Ray only when it connects."""
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))
import pagoda_ray  # noqa: E402

DEV = {"pagoda_dev": 1.0}


def node(name, dev, cpu=4.0):
    return {"node_id": name, "ip": f"10.0.0.{name[-1]}", "available": {"pagoda_dev": dev, "CPU": cpu, f"node:10.0.0.{name[-1]}": 1.0}}


def test_module_does_not_import_ray_until_it_connects():
    helper_dir = pathlib.Path(pagoda_ray.__file__).parent
    out = subprocess.run([sys.executable, "-c", "import sys, pagoda_ray; print('ray' in sys.modules)"], cwd=helper_dir,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out


@pytest.mark.parametrize("local, expected", [(1, ["n1", "n2"]), (2, ["n1", "n1"])])
def test_strict_puts_exactly_the_local_count_on_the_head(local, expected):
    nodes = [node("n1", 2), node("n2", 2)]
    assert pagoda_ray.plan_ranks(nodes, 2, local, 1, DEV, "strict") == expected


def test_strict_passes_over_a_node_that_cannot_hold_the_local_count():
    nodes = [node("n1", 2), node("n2", 1), node("n3", 2)]
    assert pagoda_ray.plan_ranks(nodes, 4, 2, 1, DEV, "strict") == ["n1", "n1", "n3", "n3"]


def test_strict_refuses_a_head_too_small_naming_the_flag_and_what_is_free():
    with pytest.raises(pagoda_ray.PlacementError) as e:
        pagoda_ray.plan_ranks([node("n1", 1), node("n2", 4)], 2, 2, 1, DEV, "strict")
    assert "--data-parallel-size-local 2" in str(e.value) and "pagoda_dev: 1" in str(e.value)


def test_fill_takes_as_many_as_fit_head_first():
    nodes = [node("n1", 1), node("n2", 3)]
    assert pagoda_ray.plan_ranks(nodes, 3, None, 1, DEV, "fill") == ["n1", "n2", "n2"]


def test_ranks_of_several_bundles_need_them_all_on_one_node_unless_span():
    nodes = [node("n1", 1), node("n2", 1)]
    with pytest.raises(pagoda_ray.PlacementError) as e:
        pagoda_ray.plan_ranks(nodes, 1, None, 2, DEV, "fill")
    message = str(e.value)
    assert "rank(s) 0..0" in message and "2 bundle(s) {pagoda_dev: 1} on one node" in message
    assert "10.0.0.1: {CPU: 4, pagoda_dev: 1}" in message and "node:" not in message
    assert pagoda_ray.plan_ranks(nodes, 1, None, 2, DEV, "span") == [None]


def test_span_refuses_more_than_the_cluster_holds():
    with pytest.raises(pagoda_ray.PlacementError) as e:
        pagoda_ray.plan_ranks([node("n1", 1), node("n2", 1)], 2, None, 2, DEV, "span")
    assert "the cluster has {CPU: 8, pagoda_dev: 2} free" in str(e.value)


def test_unsatisfiable_strict_placement_names_the_ranks_left_over():
    with pytest.raises(pagoda_ray.PlacementError) as e:
        pagoda_ray.plan_ranks([node("n1", 1), node("n2", 1)], 3, 1, 1, DEV, "strict")
    assert "rank(s) 2..2" in str(e.value) and "strategy strict, 1 per node" in str(e.value)


def test_an_unknown_strategy_is_refused():
    with pytest.raises(pagoda_ray.PlacementError, match="must be one of strict, fill, span"):
        pagoda_ray.plan_ranks([node("n1", 1)], 1, None, 1, DEV, "spread")


def test_fits_counts_bundles_by_the_scarcest_resource():
    assert pagoda_ray.fits({"CPU": 3.0, "pagoda_dev": 2.0}, {"CPU": 1.0, "pagoda_dev": 1.0}, 10) == 2
    assert pagoda_ray.fits({"CPU": 3.0}, {"CPU": 1.0, "pagoda_dev": 1.0}, 10) == 0
    assert pagoda_ray.fits({"CPU": 0.5}, {"CPU": 0.25}, 10) == 2


def test_exit_reasons_read_like_pagoda_logs():
    assert pagoda_ray.exit_reason(3) == "exited with status 3"
    assert pagoda_ray.exit_reason(-9) == "was killed by signal 9"
    assert pagoda_ray.placement_group_name("serve12", 1) == "pagoda-serve12-dp1"


def test_exec_needs_a_command():
    with pytest.raises(SystemExit):
        pagoda_ray.main(["exec", "--placement-group", "g", "--bundle", "0", "--"])
