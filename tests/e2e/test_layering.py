"""The layers' include direction (docs/ARCHITECTURE.md) holds, and the
check that enforces it really catches a wrong-way include."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "tools" / "check-includes.py"


def run_check(src):
    return subprocess.run([sys.executable, str(CHECK), str(src)], capture_output=True,
                          text=True, timeout=30)


def test_tree_includes_point_one_way():
    r = run_check(REPO / "src")
    assert r.returncode == 0, r.stdout


def test_core_including_http_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    with open(src / "core" / "model.h", "a") as f:
        f.write('#include "../http/http.h"\n')
    r = run_check(src)
    assert r.returncode == 1
    assert "core may not include http" in r.stdout


def test_cli_including_the_engine_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    with open(src / "cli" / "cli.c", "a") as f:
        f.write('#include "engine/engine.h"\n')
    r = run_check(src)
    assert r.returncode == 1
    assert "cli may not include engine" in r.stdout


def test_surface_including_the_servers_state_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    with open(src / "http" / "api_v1.c", "a") as f:
        f.write('#include "server_internal.h"\n')
    r = run_check(src)
    assert r.returncode == 1
    assert "may include http/server_internal.h" in r.stdout
    assert "api_v1.c" in r.stdout


def test_surface_including_the_path_table_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    with open(src / "http" / "ui.h", "a") as f:
        f.write('#include "router.h"\n')
    r = run_check(src)
    assert r.returncode == 1
    assert "may include http/router.h" in r.stdout
