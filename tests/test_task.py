"""Tasks: JSON and random tasks, and a clear error for every bad task."""


import networkx as nx
import numpy as np
import pytest

from spicelearn.errors import ConfigError, TaskError
from spicelearn.model.network import compile_network
from spicelearn.model.task import Task, load_task, random_task


def test_default_and_json(lab, tmp_path):
    t = load_task("default", lab)
    assert dict(t.sources) == {"0": 0.0, "8": 1.0} and dict(t.targets) == {"2": 0.25, "6": 0.65}
    p = tmp_path / "t.json"
    t.to_json(p)
    assert load_task(str(p), lab) == t
    b = t.bind(lab)
    np.testing.assert_array_equal(b.target_index, [2, 6])
    v = np.zeros(9)
    assert b.mse(v) == pytest.approx(0.25 ** 2 + 0.65 ** 2)


def test_random_task_statistics(d64):
    t = load_task("random:5,3,7", d64)
    assert len(t.sources) == 5 and len(t.targets) == 3
    assert load_task("random:5,3,7", d64) == t and load_task("random:5,3,8", d64) != t
    vs = np.concatenate([list(random_task(d64, 10, 3, s).sources.values()) for s in range(200)])
    vt = np.concatenate([list(random_task(d64, 10, 3, s).targets.values()) for s in range(200)])
    assert abs(vs.std() - 1.0) < 0.08 and abs(vt.std() - 0.2) < 0.03


@pytest.mark.parametrize("data, match", [
    ({"sources": {"0": 0.0}, "targets": {"99": 1.0}}, "not in network"),
    ({"sources": {"zz": 0.0}, "targets": {"2": 1.0}}, "not in network"),
    ({"sources": {"0": 0.0, "2": 1.0}, "targets": {"2": 1.0}}, "both source and target"),
    ({"sources": {}, "targets": {"2": 1.0}}, "no `sources`"),
    ({"sources": {"0": 1.0}, "targets": {}}, "no `targets`"),
    ({"sources": {"0": float("nan")}, "targets": {"2": 1.0}}, "not finite"),
    ({"sources": {"0": 0.0}, "targets": {"2": "high"}}, "not a number"),
    ({"inputs": {"0": 0.0}}, r"must be an object .*; unknown key\(s\) \['inputs'\]"),
    ({"sources": {0: 1.0, "0": 2.0}, "targets": {"2": 0.5}}, "names node '0' twice"),
])
def test_bad_tasks(lab, data, match):
    with pytest.raises(TaskError, match=match):
        load_task(data, lab).bind(lab)


def test_bad_task_specs(lab, tmp_path):
    with pytest.raises(TaskError, match="random:MS,MT,SEED"):
        load_task("random:5", lab)
    with pytest.raises(TaskError, match="too few"):
        load_task("random:6,4,0", lab)
    with pytest.raises(TaskError, match="not a JSON file"):
        load_task("nope.json", lab)
    with pytest.raises(TaskError, match=r"not a JSON file, .* \(it is a folder\)"):
        load_task(str(tmp_path), lab)
    p = tmp_path / "broken.json"
    p.write_text("{")
    with pytest.raises(TaskError, match="not valid JSON"):
        load_task(str(p), lab)
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TaskError, match="nests its JSON too deeply"):
        load_task(str(p), lab)
    for spec in (None, 2.5, ["default"], b"default"):  # not text: one clear error, not os.fspath's TypeError
        with pytest.raises(ConfigError, match=r"`task` must be a Task, a dict, a JSON file"):
            load_task(spec, lab)


def test_floating_island_without_driven_node():
    g = nx.Graph([("a", "b"), ("b", "c"), ("x", "y")])
    net = compile_network(g, allow_disconnected=True)
    with pytest.raises(TaskError, match=r"\['x', 'y'\] form a floating island"):
        Task({"a": 1.0}, {"c": 0.5}).bind(net)
    # driven in every part: fine
    Task({"a": 1.0, "x": 0.0}, {"c": 0.5}).bind(net)
    # the components are found once per network; what a caller does to the lists it gets does not change them
    comps = net.components()
    assert sorted(map(sorted, comps)) == [[0, 1, 2], [3, 4]]
    comps[0].append(99)
    comps.pop()
    assert sorted(map(sorted, net.components())) == [[0, 1, 2], [3, 4]]
    with pytest.raises(TaskError, match=r"\['x', 'y'\] form a floating island"):
        Task({"a": 1.0}, {"c": 0.5}).bind(net)


def test_the_network_and_counts_of_a_task_are_checked(lab):
    from spicelearn.model.task import random_task

    for call in (lambda: load_task("default", "lab16"), lambda: random_task("lab16", 2, 1),
                 lambda: load_task("default", lab).bind(None)):
        with pytest.raises(TaskError, match="`network` must be a compiled network"):
            call()
    for args, message in (((lab, 2.5, 1), "`n_sources` must be an integer"), ((lab, 2, None), "`n_targets`"),
                          ((lab, True, 1), "`n_sources`")):
        with pytest.raises(TaskError, match=message):
            random_task(*args)
    with pytest.raises(ConfigError, match="`seed` must be an integer"):
        random_task(lab, 2, 1, seed=-1)
