"""docker/compose.cluster.yaml: no Docker engine, Qdrant server or Ray cluster runs here, so the recipe is
checked against what it deploys: the single-host recipe's Qdrant image, Qdrant's cluster bootstrap, the
real `ragkit` and `ray` command-line parsers, and the settings ragkit reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ragkit.cli import build_parser
from ragkit.config import ENVIRONMENT_VARIABLES
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
RAGKIT_VARIABLES = set(ENVIRONMENT_VARIABLES) | set(LLM_ENVIRONMENT_VARIABLES)
PINNED_QDRANT = re.compile(r"qdrant/qdrant:v\d+\.\d+\.\d+")
NODES = ("qdrant-0", "qdrant-1", "qdrant-2")
P2P_PORT = "6335"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.cluster.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def flags(command: list[str]) -> dict[str, str | bool]:
    """`--name value`, `--name=value` and bare `--name` options of a command line, by name."""
    found: dict[str, str | bool] = {}
    for index, token in enumerate(command):
        if token.startswith("--"):
            name, sep, value = token.partition("=")
            following = command[index + 1] if index + 1 < len(command) else "--"
            found[name] = value if sep else (following if not following.startswith("--") else True)
    return found


def ragkit_args(service: str, command: list[str]):
    """The command parsed by ragkit's own CLI parser, failing on any flag it does not define."""
    assert command[0] == "ragkit", f"{service} does not run ragkit: {command}"
    args, unknown = build_parser().parse_known_args(command[1:])
    assert not unknown, f"{service} passes flags `ragkit {args.command}` does not define: {unknown}"
    return args


def published(ports: list[str]) -> list[tuple[str, str]]:
    """(host side, container port) of each published port."""
    return [tuple(port.rsplit(":", 1)) for port in ports]


def test_the_cluster_runs_three_nodes_of_the_single_host_recipes_pinned_image(
    services: dict[str, Any],
) -> None:
    single = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    qdrant = {name for name, service in services.items() if service["image"].startswith("qdrant/")}
    assert qdrant == set(NODES)
    for name in NODES:
        assert PINNED_QDRANT.fullmatch(services[name]["image"])
        assert services[name]["image"] == single["services"]["qdrant"]["image"]


def test_the_first_node_starts_the_cluster_and_the_others_bootstrap_from_it(services: dict[str, Any]) -> None:
    first, *others = NODES
    for name in NODES:
        node = services[name]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert node["environment"]["QDRANT__CLUSTER__P2P__PORT"] == P2P_PORT
        # The image's CMD: a wrapper that hands its arguments to ./qdrant (and handles recovery mode).
        assert node["command"][0] == "./entrypoint.sh"
        assert flags(node["command"])["--uri"] == f"http://{name}:{P2P_PORT}"  # a stable name, not an IP
    assert "--bootstrap" not in flags(services[first]["command"])
    for name in others:
        assert flags(services[name]["command"])["--bootstrap"] == f"http://{first}:{P2P_PORT}"
        assert services[name]["depends_on"][first]["condition"] == "service_healthy"


def test_each_node_keeps_its_data_in_its_own_volume_and_reports_readiness(compose: dict[str, Any]) -> None:
    services = compose["services"]
    storage = []
    for name in NODES:
        node = services[name]
        [mount] = [volume for volume in node["volumes"] if volume.endswith(":/qdrant/storage")]
        storage.append(mount.partition(":")[0])
        probe = node["healthcheck"]["test"]
        assert probe[0] == "CMD" and "/readyz" in probe[-1]
        assert "$$status" in probe[-1]  # "$status" alone would be eaten by compose's interpolation
        assert node["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${RAGKIT_QDRANT_API_KEY:?")
        assert node["restart"] == "unless-stopped"
    assert len(set(storage)) == len(NODES) and set(storage) <= set(compose["volumes"])


def test_only_the_first_nodes_api_is_published_and_only_on_loopback(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for host, container in published(service.get("ports", [])):
            assert container != P2P_PORT, f"{name} publishes the peers' unauthenticated port"
            if name in NODES:
                assert host == "127.0.0.1:6333" and name == "qdrant-0"
    for name in NODES:
        assert P2P_PORT in services[name]["expose"]  # but reachable by the other peers


def test_api_replicas_serve_behind_all_nodes(services: dict[str, Any]) -> None:
    api = services["api"]
    args = ragkit_args("api", api["command"])
    assert (args.command, args.host) == ("serve", "0.0.0.0")
    replicas = api["deploy"]["replicas"]
    assert replicas >= 2
    [(host, container)] = published(api["ports"])
    assert container == str(args.port)
    first, last = re.search(r"(\d+)-(\d+)}?$", host).groups()
    assert int(last) - int(first) + 1 == replicas, "one host port per replica"
    assert f"127.0.0.1:{args.port}/readyz" in api["healthcheck"]["test"][-1]
    # The URL names an alias every node carries, so no single node is the replicas' only way in.
    alias = urlsplit(api["environment"]["RAGKIT_QDRANT_URL"]).hostname
    for name in NODES:
        assert alias in services[name]["networks"]["default"]["aliases"]
        assert api["depends_on"][name]["condition"] == "service_healthy"
    assert api["environment"]["RAGKIT_API_KEY"].startswith("${RAGKIT_API_KEY:?")


def test_api_replicas_do_not_share_a_work_folder(services: dict[str, Any]) -> None:
    # Each replica clears the staging folder of its work dir when it starts: a shared one would lose
    # another replica's uploads in flight.
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    work = re.search(r"RAGKIT_WORK_DIR=(\S+)", dockerfile)[1]
    api = services["api"]
    assert "RAGKIT_WORK_DIR" not in api["environment"]
    assert all(volume.split(":")[1] != work for volume in api["volumes"])


def test_collections_get_the_same_sharding_from_the_api_and_the_ingest_job(services: dict[str, Any]) -> None:
    serve = ragkit_args("api", services["api"]["command"])
    ingest = ragkit_args("ingest", services["ingest"]["command"])
    layout = {(args.shards, args.replicas, args.write_consistency) for args in (serve, ingest)}
    [(shards, replicas, write_consistency)] = layout
    assert shards % len(NODES) == 0 and shards >= 2 * len(NODES)  # even spread, room to add nodes
    assert replicas == 2
    # Acknowledged by one copy, writes carry on while a node is down (Qdrant refuses writes when fewer
    # replicas are active than the factor).
    assert 1 <= write_consistency < replicas


def test_the_ingest_job_drives_the_ray_cluster_over_ray_client(services: dict[str, Any]) -> None:
    ingest = services["ingest"]
    assert ingest["profiles"] == ["ingest"]
    args = ragkit_args("ingest", ingest["command"])
    assert [str(path) for path in args.paths] == ["/documents"] and args.prune
    ray = urlsplit(args.ray)
    head = flags(services["ray-head"]["command"])
    assert (ray.scheme, ray.hostname, str(ray.port)) == ("ray", "ray-head", head["--ray-client-server-port"])
    assert urlsplit(args.url).hostname == "qdrant-0"
    assert ingest["environment"]["RAGKIT_QDRANT_URL"] == args.url
    work = next(volume for volume in ingest["volumes"] if volume.startswith("work:"))
    assert str(args.report).startswith(work.split(":")[1] + "/")  # the report lands in a volume
    for name in (*NODES, "ray-head"):
        assert ingest["depends_on"][name]["condition"] == "service_healthy"


def test_the_ray_head_and_gpu_workers_form_one_cluster(services: dict[str, Any]) -> None:
    from ray.scripts import scripts  # the ray extra, which dev installs

    head, worker = services["ray-head"], services["ray-gpu-worker"]
    for name, service in (("ray-head", head), ("ray-gpu-worker", worker)):
        command = service["command"]
        assert command[:2] == ["ray", "start"]
        # Parsed by Ray's own CLI: a misspelt or removed option fails here, not on the cluster.
        options = scripts.start.make_context("ray start", list(command[2:])).params
        assert options["block"] and options["disable_usage_stats"], f"{name} must block, without telemetry"
        assert service["shm_size"] and service["restart"] == "unless-stopped"
    head_options = scripts.start.make_context("ray start", list(head["command"][2:])).params
    worker_options = scripts.start.make_context("ray start", list(worker["command"][2:])).params
    assert head_options["head"] and head_options["num_gpus"] == 0
    assert worker_options["address"] == f"ray-head:{head_options['port']}"
    probe = head["healthcheck"]["test"]
    scripts.healthcheck.make_context("ray health-check", probe[3:])
    assert probe[1:3] == ["ray", "health-check"] and str(head_options["port"]) in probe[-1]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == "all"
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"


def test_every_ray_node_and_the_driver_see_the_documents_at_the_same_path(services: dict[str, Any]) -> None:
    mounts = {}
    for name in ("ray-head", "ray-gpu-worker", "ingest"):
        [documents] = [volume for volume in services[name]["volumes"] if ":/documents" in volume]
        assert documents.endswith(":ro")
        mounts[name] = documents
    assert len(set(mounts.values())) == 1


def test_ray_nodes_and_the_driver_share_one_required_token(services: dict[str, Any]) -> None:
    # Ray runs whatever code reaches it: without a token, anyone on the network could.
    for name in ("ray-head", "ray-gpu-worker", "ingest"):
        environment = services[name]["environment"]
        assert environment["RAY_AUTH_MODE"] == "token"
        assert environment["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")  # no token, no start
        assert environment["RAY_USAGE_STATS_ENABLED"] == "0"
    assert "RAY_AUTH_TOKEN" not in services["api"]["environment"]  # the API never talks to Ray
    documented = dict(
        line.split("=", 1)
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert documented["RAY_AUTH_TOKEN"] == ""  # never a real token


def test_ragkit_services_run_one_image_built_with_the_ray_extra(services: dict[str, Any]) -> None:
    ours = {name: service for name, service in services.items() if not name.startswith("qdrant-")}
    assert len({service["image"] for service in ours.values()}) == 1
    assert not next(iter(ours.values()))["image"].endswith(":latest")
    extras = {service["build"]["args"]["RAGKIT_EXTRAS"] for service in ours.values()}
    [chosen] = extras
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG RAGKIT_EXTRAS=", dockerfile, flags=re.M)
    assert 'pip install ".[${RAGKIT_EXTRAS}]"' in dockerfile
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    defined = pyproject["project"]["optional-dependencies"]
    missing = [extra for extra in chosen.split(",") if extra not in defined]
    assert "ray" in chosen.split(",") and not missing, f"pyproject.toml defines no extra {missing}"


def test_service_variables_are_ones_ragkit_reads(services: dict[str, Any]) -> None:
    for name, service in services.items():
        ours = {variable for variable in service.get("environment", {}) if variable.startswith("RAGKIT_")}
        assert ours <= RAGKIT_VARIABLES, (
            f"{name} sets variables ragkit does not read: {ours - RAGKIT_VARIABLES}"
        )


def test_every_named_volume_is_declared_and_used(compose: dict[str, Any]) -> None:
    used = {
        volume.partition(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("$", ".", "/"))
    }
    assert used == set(compose["volumes"])
