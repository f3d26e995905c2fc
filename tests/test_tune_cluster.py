"""MobsterSearcher + MobsterScheduler unchanged on a multi-node Ray cluster (three nodes on this
machine through ``ray.cluster_utils.Cluster``), CPU trials spread over the nodes and GPU trials
through ``tune.with_resources`` (a logical GPU: no hardware needed). The GP stays on the driver."""

from __future__ import annotations

import os
import sys
import time

import pytest
import ray
from ray import tune
from ray.cluster_utils import Cluster

from tune_mobster import MobsterScheduler, MobsterSearcher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def where_am_i(config: dict) -> None:
    node = ray.get_runtime_context().get_node_id()
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    for iteration in range(1, 4):
        time.sleep(1.0)  # long enough for trials to overlap and spread
        tune.report({"loss": (config["x"] - 0.5) ** 2 + 1.0 / iteration, "node": node, "gpus": gpus})


def _fit(trainable, storage_path: str, num_samples: int):
    return tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            num_samples=num_samples,
            max_concurrent_trials=3,  # one trial per node at a time
            reuse_actors=True,
            search_alg=MobsterSearcher(seed=0, num_initial_random=4),
            scheduler=MobsterScheduler(max_t=3, reduction_factor=3),
        ),
        run_config=tune.RunConfig(storage_path=storage_path, verbose=0),
    ).fit()


def test_cpu_trials_spread_over_the_nodes(cluster, tmp_path) -> None:
    results = _fit(tune.with_resources(where_am_i, {"cpu": 1}), str(tmp_path), num_samples=7)
    assert not results.errors and len(results) == 7
    assert len({r.config["x"] for r in results}) == 7
    assert len({r.metrics["node"] for r in results}) >= 2


def test_gpu_trials_land_on_the_gpu_node(cluster, tmp_path) -> None:
    gpu_nodes = {node["NodeID"] for node in ray.nodes() if node["Resources"].get("GPU")}
    results = _fit(tune.with_resources(where_am_i, {"cpu": 1, "gpu": 1}), str(tmp_path), num_samples=3)
    assert not results.errors and len(results) == 3
    assert {r.metrics["node"] for r in results} == gpu_nodes
    assert all(r.metrics["gpus"] != "" for r in results)
