"""docker/: no Docker engine runs here, so the files are checked against the code they deploy.

The compose services' commands must parse with the real CLI parser and their variables must be ones
ragkit reads, so that renaming a flag or a setting breaks this test instead of a deployment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragkit.cli import build_parser
from ragkit.config import ENVIRONMENT_VARIABLES
from ragkit.llm import LLM_ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
RAGKIT_VARIABLES = set(ENVIRONMENT_VARIABLES) | set(LLM_ENVIRONMENT_VARIABLES)
PINNED_QDRANT = re.compile(r"qdrant/qdrant:v\d+\.\d+\.\d+")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text(encoding="utf-8")


def dockerfile_env(dockerfile: str) -> dict[str, str]:
    joined = dockerfile.replace("\\\n", " ")
    return dict(re.findall(r"(\w+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", joined, flags=re.M))))


def env_example() -> dict[str, str]:
    lines = (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines()
    settings = {}
    for number, line in enumerate(lines):
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert lines[number - 1].startswith("#"), (
                f"{name} in .env.example has no comment saying what it is"
            )
            settings[name] = value
    return settings


def test_images_are_pinned(services: dict[str, Any], dockerfile: str) -> None:
    assert PINNED_QDRANT.fullmatch(services["qdrant"]["image"])
    [base] = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-cuda[\d.]+-\S+", base), f"{base} is not a pinned CUDA image"
    for name in ("api", "ingest"):
        assert not services[name]["image"].endswith(":latest")


def test_qdrant_keeps_its_data_in_a_volume_and_reports_readiness(compose: dict[str, Any]) -> None:
    qdrant = compose["services"]["qdrant"]
    volume, _, target = qdrant["volumes"][0].partition(":")
    assert target == "/qdrant/storage" and volume in compose["volumes"]
    probe = qdrant["healthcheck"]["test"]
    assert probe[0] == "CMD" and "/readyz" in probe[-1]
    assert "$$status" in probe[-1]  # "$status" alone would be eaten by compose's interpolation
    assert qdrant["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${RAGKIT_QDRANT_API_KEY:?")
    assert all(port.startswith("127.0.0.1:") for port in qdrant["ports"])


def test_the_api_waits_for_qdrant_serves_its_port_and_checks_readiness(services: dict[str, Any]) -> None:
    api = services["api"]
    args = build_parser().parse_args(api["command"][1:])
    assert (args.command, args.host) == ("serve", "0.0.0.0")
    [port] = api["ports"]
    assert port.endswith(f":{args.port}")
    assert f"127.0.0.1:{args.port}/readyz" in api["healthcheck"]["test"][-1]
    assert api["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert api["environment"]["RAGKIT_API_KEY"].startswith("${RAGKIT_API_KEY:?")  # no key, no start


@pytest.mark.parametrize("name", ["api", "ingest"])
def test_gpu_services_reserve_a_gpu_and_share_the_model_cache(
    services: dict[str, Any], compose: dict[str, Any], dockerfile: str, name: str
) -> None:
    service = services[name]
    [device] = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    mounts = dict(reversed(volume.split(":")[:2]) for volume in service["volumes"])
    env = dockerfile_env(dockerfile)
    assert mounts[env["HF_HOME"]] in compose["volumes"]  # models survive a rebuild
    assert mounts[env["RAGKIT_WORK_DIR"]] in compose["volumes"]
    assert service["environment"]["RAGKIT_QDRANT_URL"] == "http://qdrant:6333"


def test_the_ingestion_job_runs_on_demand_over_a_mounted_documents_folder(services: dict[str, Any]) -> None:
    ingest = services["ingest"]
    assert ingest["profiles"] == ["ingest"]
    args = build_parser().parse_args(ingest["command"][1:])
    assert args.command == "ingest"
    documents = next(volume for volume in ingest["volumes"] if ":/documents" in volume)
    assert documents.endswith(":ro")
    assert [str(path) for path in args.paths] == ["/documents"]
    work = dockerfile_env((DOCKER / "Dockerfile").read_text(encoding="utf-8"))["RAGKIT_WORK_DIR"]
    assert str(args.report).startswith(work + "/")  # the report lands in a volume, not in the container


def test_service_variables_are_ones_ragkit_reads(services: dict[str, Any]) -> None:
    for name in ("api", "ingest"):
        ours = {variable for variable in services[name]["environment"] if variable.startswith("RAGKIT_")}
        assert ours <= RAGKIT_VARIABLES, (
            f"{name} sets variables ragkit does not read: {ours - RAGKIT_VARIABLES}"
        )


def test_env_example_documents_exactly_what_compose_reads() -> None:
    # One .env serves both recipes (compose.yaml and compose.cluster.yaml).
    referenced = {
        name
        for path in sorted(DOCKER.glob("compose*.yaml"))
        for name in INTERPOLATION.findall(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8"))))
    }
    documented = env_example()
    assert referenced == set(documented)
    ragkit_settings = {name for name in documented if name.startswith("RAGKIT_")}
    assert ragkit_settings <= RAGKIT_VARIABLES
    assert documented["RAGKIT_API_KEY"] == documented["RAGKIT_QDRANT_API_KEY"] == ""  # never a real key


def test_the_image_runs_the_server_with_the_cli_it_installs(dockerfile: str) -> None:
    [command] = re.findall(r"^CMD (.*)$", dockerfile, flags=re.M)
    args = build_parser().parse_args(json.loads(command)[1:])
    assert args.command == "serve"
    # The extras are a build argument (compose.cluster.yaml adds ray); the default builds the API image.
    assert 'pip install ".[${RAGKIT_EXTRAS}]"' in dockerfile
    [extra] = re.findall(r"^ARG RAGKIT_EXTRAS=(\w+)$", dockerfile, flags=re.M)
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    assert extra in extras, f"the Dockerfile installs ragkit[{extra}], which pyproject.toml does not define"
    # The image installs a wheel, not the source tree: the search page must be packaged with the code.
    package_data = pyproject["tool"]["setuptools"].get("package-data", {})
    assert "static/*" in package_data.get("ragkit.server", []), "package ragkit/server/static/ as data"
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.M)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M)
    for source in (part for line in copied for part in line.split()):
        assert f"!{source.rstrip('/')}" in ignore.replace("/\n", "\n"), (
            f"{source} is excluded from the context"
        )


def test_the_models_env_example_offers_are_ones_the_image_can_load(dockerfile: str) -> None:
    from ragkit.encoder.resolve import ALIASES

    lines = (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines()
    setting = next(number for number, line in enumerate(lines) if line.startswith("RAGKIT_MODEL="))
    [offer] = [line for line in lines[:setting][-3:] if line.startswith("# Encoder:")]
    offered = {alias for alias in ALIASES if re.search(rf"\b{re.escape(alias)}\b", offer)}
    assert offered, f"{offer!r} names no alias"
    [extras] = re.findall(r"^ARG RAGKIT_EXTRAS=(\S+)$", dockerfile, flags=re.M)
    # The packaged MiniLM is a pip package of its own (the minilm extra); the hub models download.
    assert "minilm" not in offered or "minilm" in extras.split(","), (
        f".env.example offers minilm, which the image (extras {extras}) does not install"
    )
