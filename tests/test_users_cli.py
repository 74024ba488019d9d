"""`factory users` through factory_cli.main.main: add (the key printed once, with the warning),
key, keys (no secrets), revoke, plan, usage, list, and the errors bad input gets (exit 2).
Not touched: PostgreSQL (the same Tenancy is tested on it in test_tenancy.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from factory_cli.main import main
from factory_resources.project_db import project_engine
from factory_resources.tenancy import Tenancy

KEY = re.compile(r"vf_[A-Za-z0-9_-]{40,}")


def _tenancy() -> Tenancy:
    home = Path(os.environ["FACTORY_HOME"])
    return Tenancy(project_engine(home), home)


def _key(out: str) -> str:
    (key,) = KEY.findall(out)
    return key


def test_add_prints_the_key_once_and_it_authenticates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "add", "alice", "--plan", "creator"]) == 0
    captured = capsys.readouterr()
    key = _key(captured.out)
    assert "created user alice on the creator plan" in captured.out
    assert "only time the key is shown" in captured.err
    assert _tenancy().authenticate(key).name == "alice"  # type: ignore[union-attr]

    assert main(["users", "key", "alice", "--label", "laptop"]) == 0
    second = _key(capsys.readouterr().out)
    assert main(["users", "keys", "alice"]) == 0
    listing = capsys.readouterr().out
    assert not KEY.search(listing) and key not in listing and second not in listing
    assert "laptop" in listing and "2 keys, 2 active" in listing
    assert second[:9] in listing  # the prefix tells the keys apart

    assert main(["users", "keys", "alice", "--json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    laptop = next(k for k in keys if k["label"] == "laptop")
    assert main(["users", "revoke", "alice", laptop["id"]]) == 0
    assert "revoked key" in capsys.readouterr().out
    assert _tenancy().authenticate(second) is None
    assert _tenancy().authenticate(key) is not None


def test_plan_usage_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    main(["users", "add", "bob"])
    tenancy = _tenancy()
    tenancy.record_video("bob", "demo--one")
    capsys.readouterr()
    assert main(["users", "usage", "bob"]) == 0
    out = capsys.readouterr().out
    assert "bob: free plan (videos carry the watermark)" in out
    assert re.search(r"videos\s+1 of 5 this month", out)
    assert main(["users", "plan", "bob", "agency"]) == 0
    assert "bob is on the agency plan" in capsys.readouterr().out
    assert main(["users", "usage", "bob", "--json"]) == 0
    usage = json.loads(capsys.readouterr().out)
    assert usage["plan"] == "agency" and usage["limits"]["videos"] is None
    assert usage["used"]["videos"] == 1
    main(["users", "list"])
    assert re.search(r"bob\s+agency", capsys.readouterr().out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "add", "Bad Name"], "lowercase letters, digits or dashes"),
        (["users", "add", "carol", "--plan", "gold"], "unknown plan 'gold'; use one of free"),
        (["users", "keys", "nobody"], "no user named 'nobody'; create one with"),
        (["users", "plan", "nobody", "pro"], "no user named 'nobody'"),
        (["users", "revoke", "dave", "nokey"], "dave has no key 'nokey'"),
        (["users", "usage", "nobody"], "no user named 'nobody'"),
    ],
)
def test_bad_input_exits_2_with_what_to_do(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["users", "add", "dave"])
    capsys.readouterr()
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_bad_plans_yaml_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(os.environ["FACTORY_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "plans.yaml").write_text("free: {channels: lots}\n", encoding="utf-8")
    assert main(["users", "add", "erin"]) == 2
    err = capsys.readouterr().err
    assert "plans.yaml: plan 'free': channels:" in err and "vf_" not in err
