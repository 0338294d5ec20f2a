"""Shared fixtures: the Speech Commands folder and small feature sets."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_dir():
    """The real Speech Commands folder (../shared subset in CI); skip when absent."""
    from kwslab import dataset

    try:
        return dataset.find_data_dir()
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Speech Commands data: {e}")
