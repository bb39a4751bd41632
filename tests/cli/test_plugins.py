"""`tunectl plugins list|show|reload`."""

from __future__ import annotations

from tests.cli.conftest import Daemon, needs_testops

pytestmark = needs_testops


def test_plugins_list_table_and_json(daemon: Daemon) -> None:
    rows = {p["name"]: p for p in daemon.json("plugins", "list")}
    testops = rows["testops"]
    assert testops["status"] == "loaded" and testops["version"] == "0.1.0" and len(testops["code_hash"]) == 64
    out = daemon.tunectl("plugins", "list")
    assert out.returncode == 0
    header, *lines = out.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "STATUS", "SOURCE", "CODE", "ERROR"]
    line = next(x for x in lines if x.startswith("testops "))
    assert line.split()[:5] == ["testops", "0.1.0", "loaded", testops["source"], testops["code_hash"][:12]]
    assert header.index("VERSION") == line.index("0.1.0")  # columns are aligned
    assert daemon.tunectl("plugins").stdout == out.stdout  # `plugins` alone lists


def test_plugins_show(daemon: Daemon) -> None:
    out = daemon.tunectl("plugins", "show", "testops")
    assert out.returncode == 0
    assert "status     loaded" in out.stdout
    assert "testops.sleep  [cpu]  Sleep for a while" in out.stdout
    assert "  param   seconds: number = 1.0  How long to sleep." in out.stdout
    row = daemon.json("plugins", "show", "testops")
    assert row["manifest"]["operations"]["sleep"]["params"]["seconds"]["default"] == 1.0


def test_plugins_show_unknown_is_not_found(daemon: Daemon) -> None:
    out = daemon.tunectl("plugins", "show", "nope")
    assert out.returncode == 4
    assert out.stderr.splitlines()[0] == "Error: no plugin named 'nope'"
    assert out.stderr.splitlines()[-1].startswith("Hint: known plugins: ") and "testops" in out.stderr


def test_plugins_reload_one(daemon: Daemon) -> None:
    rows = daemon.json("plugins", "reload", "testops")
    assert [r["name"] for r in rows] == ["testops"] and rows[0]["status"] == "loaded"
    out = daemon.tunectl("plugins", "reload", "testops")
    assert out.returncode == 0 and out.stdout.splitlines()[1].startswith("testops ")
    assert daemon.tunectl("plugins", "reload", "nope").returncode == 4
