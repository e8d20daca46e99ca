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


def check_with_include(tmp_path, file, include):
    """Runs the check on a copy of src/ where file also includes include."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    with open(src / file, "a") as f:
        f.write('#include "%s"\n' % include)
    return run_check(src)


def test_core_including_http_is_caught(tmp_path):
    r = check_with_include(tmp_path, "core/model.h", "../http/http.h")
    assert r.returncode == 1
    assert "core may not include http" in r.stdout


def test_cli_including_the_engine_is_caught(tmp_path):
    r = check_with_include(tmp_path, "cli/cli.c", "engine/engine.h")
    assert r.returncode == 1
    assert "cli may not include engine" in r.stdout


def test_surface_including_the_servers_state_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/api_v1.c", "runtime.h")
    assert r.returncode == 1
    assert "may include http/runtime.h" in r.stdout
    assert "api_v1.c" in r.stdout


def test_surface_including_the_path_table_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/ui.h", "router.h")
    assert r.returncode == 1
    assert "may include http/router.h" in r.stdout


def test_reply_including_a_surface_is_caught(tmp_path):
    """The bottom room of http (request, replies, forms) calls no surface:
    an include back up would close the circle again."""
    r = check_with_include(tmp_path, "http/reply.c", "ui.h")
    assert r.returncode == 1
    assert "http room 'request' may not include room 'surfaces' (ui.h)" in r.stdout


def test_request_including_the_router_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/request.h", "router.h")
    assert r.returncode == 1
    assert "http room 'request' may not include room 'router' (router.h)" in r.stdout


def test_auth_including_a_surface_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/auth.c", "ui.h")
    assert r.returncode == 1
    assert "http room 'auth' may not include room 'surfaces' (ui.h)" in r.stdout


def test_surface_including_the_server_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/scrape.c", "server.h")
    assert r.returncode == 1
    assert "http room 'surfaces' may not include room 'server' (server.h)" in r.stdout


def test_http_file_in_no_room_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    (src / "http" / "extra.c").write_text('#include "http.h"\n')
    r = run_check(src)
    assert r.returncode == 1
    assert "extra.c: file of http in no room" in r.stdout
