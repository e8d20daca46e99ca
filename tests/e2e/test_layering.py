"""The layers' include direction and the http rooms (docs/ARCHITECTURE.md)
hold, and the check that enforces them catches a wrong-way include, a
duplicate include guard and an http file in no room."""

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
    r = check_with_include(tmp_path, "http/api_v1.c", "server_internal.h")
    assert r.returncode == 1
    assert "may include http/server_internal.h" in r.stdout
    assert "api_v1.c" in r.stdout


def test_surface_including_the_path_table_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/ui.h", "router.h")
    assert r.returncode == 1
    assert "may include http/router.h" in r.stdout


def test_layer_reached_through_a_header_is_caught(tmp_path):
    # engine may include store, http may not: a store header that an
    # engine header pulls in reaches every http file that includes it
    r = check_with_include(tmp_path, "engine/engine.h", "../store/store.h")
    assert r.returncode == 1
    assert "http may not include store (../engine/engine.h through" in r.stdout
    assert "daemon.c" in r.stdout


def test_duplicate_include_guard_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    (src / "cli" / "twin.h").write_text(
        "#ifndef CM_COMMAND_H\n#define CM_COMMAND_H\n#endif\n")
    r = run_check(src)
    assert r.returncode == 1
    assert "include guard CM_COMMAND_H is also" in r.stdout


def test_request_room_including_authentication_is_caught(tmp_path):
    # the circle: the request API calling back up into what calls it
    r = check_with_include(tmp_path, "http/request.c", "auth.h")
    assert r.returncode == 1
    assert "the request room may not include auth.h" in r.stdout


def test_surface_including_the_daemons_main_is_caught(tmp_path):
    r = check_with_include(tmp_path, "http/probe.c", "daemon.h")
    assert r.returncode == 1
    assert "the surfaces room may not include daemon.h" in r.stdout


def test_http_file_in_no_room_is_caught(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src)
    (src / "http" / "stray.c").write_text('#include "http.h"\n')
    r = run_check(src)
    assert r.returncode == 1
    assert "stray.c: in no room of http" in r.stdout
