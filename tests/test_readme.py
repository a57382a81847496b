"""The README's commands are the ones CI runs, so they cannot rot silently."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_quickstart_installs_then_ingests_the_shipped_samples_and_searches():
    quickstart = readme_commands()[0]
    assert quickstart.startswith("pip install")
    assert "ragkit ingest samples" in quickstart and "ragkit search" in quickstart
    assert any((ROOT / "samples").iterdir())


def test_every_setting_is_documented_in_the_readme_and_the_cli_help(capsys):
    import pytest

    from ragkit.cli import main
    from ragkit.config import ENVIRONMENT_VARIABLES
    from ragkit.llm import LLM_ENVIRONMENT_VARIABLES

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text()
    for name in ENVIRONMENT_VARIABLES | LLM_ENVIRONMENT_VARIABLES:
        assert f"`{name}`" in readme and name in help_text
