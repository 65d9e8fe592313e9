"""The cluster environment's object store credentials: the environment's pair wins; otherwise the stack generates
one pair, once, readable by its owner only, and every Spark launch of the checkout finds it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lakehouse.config.settings import load_settings
from lakehouse.scripts.object_store import ObjectStore


def test_a_generated_pair_is_kept_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    settings = load_settings("cluster", environ={"LAKEHOUSE_HOME": str(tmp_path)})
    store = ObjectStore(settings)
    assert store.configured and store.port == 9000

    pair = store.credentials()

    path = tmp_path / "object-store" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(pair["AWS_SECRET_ACCESS_KEY"]) == 40 and pair["AWS_ACCESS_KEY_ID"].startswith("lakehouse-")
    assert settings.object_store_credentials() == pair
    assert ObjectStore(settings).credentials() == pair, "a second start must keep the pair"


def test_the_environments_pair_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    settings = load_settings("cluster", environ={"LAKEHOUSE_HOME": str(tmp_path)})

    assert ObjectStore(settings).credentials() == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "from-the-environment",
    }
    assert not (tmp_path / "object-store").exists(), "nothing is generated when the environment has a pair"


def test_a_store_elsewhere_is_not_part_of_the_stack(tmp_path: Path) -> None:
    environ = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com"}
    assert not ObjectStore(load_settings("cluster", environ=environ)).configured
    assert not ObjectStore(load_settings("local", environ={"LAKEHOUSE_HOME": str(tmp_path)})).configured
