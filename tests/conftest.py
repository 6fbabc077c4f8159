"""Shared test setup: tfstack is imported first so TensorFlow is configured once."""

import pytest

import tfstack  # noqa: F401


@pytest.fixture(scope="session")
def superres_workdir(tmp_path_factory):
    """A workdir with the `tiny` superres preset trained once, through the CLI."""
    from tfstack.cli import main

    workdir = tmp_path_factory.mktemp("superres-work")
    assert (
        main(["train", "superres", "--preset", "tiny", "--no-progress", "--workdir", str(workdir)])
        == 0
    )
    return workdir


@pytest.fixture(scope="session")
def tumor_workdir(tmp_path_factory):
    """A workdir with the `tiny` tumor preset trained once (slides included), through the CLI."""
    from tfstack.cli import main

    workdir = tmp_path_factory.mktemp("tumor-work")
    assert (
        main(["train", "tumor", "--preset", "tiny", "--no-progress", "--workdir", str(workdir)])
        == 0
    )
    return workdir


@pytest.fixture(scope="session")
def nmt_workdir(tmp_path_factory):
    """A workdir with the `tiny` nmt preset (pip-only corpus) trained once, through the CLI."""
    from tfstack.cli import main

    workdir = tmp_path_factory.mktemp("nmt-work")
    assert (
        main(["train", "nmt", "--preset", "tiny", "--no-progress", "--workdir", str(workdir)]) == 0
    )
    return workdir


@pytest.fixture(scope="session")
def speech_workdir(tmp_path_factory):
    """A workdir with the `tiny` speech preset trained once, through the CLI. Its audio is
    synthesised into the user's cache (`$TFSTACK_CACHE`) once per machine."""
    from models.speech.synth import missing_tools
    from tfstack.cli import main

    if missing_tools():
        pytest.skip(f"speech needs Debian packages {missing_tools()} (`make speech-tools`)")
    workdir = tmp_path_factory.mktemp("speech-work")
    assert (
        main(["train", "speech", "--preset", "tiny", "--no-progress", "--workdir", str(workdir)])
        == 0
    )
    return workdir


@pytest.fixture(scope="session")
def colorize_workdir(tmp_path_factory):
    """A workdir with the `tiny` colorize preset trained once, through the CLI."""
    from tfstack.cli import main

    workdir = tmp_path_factory.mktemp("colorize-work")
    assert (
        main(["train", "colorize", "--preset", "tiny", "--no-progress", "--workdir", str(workdir)])
        == 0
    )
    return workdir
