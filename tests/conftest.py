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
