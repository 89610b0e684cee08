"""Installation: what a wheel must hold, ``python -m rain2avoid``, the optional extras, and .ci/run."""

import os
import re
import runpy
import shutil
import stat
import subprocess
import sys
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import pytest

import rain2avoid

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(rain2avoid.__file__).resolve().parent


def test_python_dash_m_rain2avoid_is_the_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["rain2avoid", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("rain2avoid", run_name="__main__")
    assert exit_.value.code == 0
    assert "derain" in capsys.readouterr().out


RESOURCES = ["serve/static/index.html", "serve/static/app.js", "serve/static/style.css",
             "noref/niqe_pristine.npz", "noref/brisque_live_svr.npz", "noref/NOTICE.md"]


@pytest.mark.parametrize("name", RESOURCES)
def test_the_installed_package_holds_its_resource_files(name):
    # Through rain2avoid's own files: importing rain2avoid.serve would need the web extra.
    assert resources.files("rain2avoid").joinpath(name).read_bytes()


def test_every_resource_file_of_the_source_is_package_data():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    if PACKAGE != ROOT / "src" / "rain2avoid":
        pytest.skip("not run from a checkout (the installed package is checked above)")
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    others = [p.relative_to(PACKAGE.parent) for p in PACKAGE.rglob("*") if p.is_file()
              and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert sorted(p.relative_to("rain2avoid").as_posix() for p in others) == sorted(RESOURCES)
    for path in others:
        package = ".".join(path.parent.parts)
        while package not in package_data and "." in package:  # "static/*" of rain2avoid.serve
            package = package.rsplit(".", 1)[0]
        inside = path.relative_to(Path(*package.split("."))).as_posix()
        assert any(fnmatch(inside, pattern) for pattern in package_data.get(package, [])), \
            f"{path} is not in [tool.setuptools.package-data]: a wheel would leave it out"


def test_import_rain2avoid_loads_no_optional_extra():
    extras = ("fastapi", "uvicorn", "starlette", "multipart", "python_multipart", "dask", "distributed", "av")
    code = f"import sys, rain2avoid; print([m for m in {extras!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_and_version_answer_without_importing_torch():
    # torch takes seconds to import: `rain2avoid --help` must not wait for it.
    code = """if True:
        import sys
        from rain2avoid.cli import main
        assert len(main.commands) == 9, sorted(main.commands)
        for args in [["--help"], ["--version"]] + [[name, "--help"] for name in main.commands]:
            try:
                main(args, prog_name="rain2avoid", standalone_mode=True)
            except SystemExit as e:
                assert e.code == 0, (args, e.code)
            assert "torch" not in sys.modules, f"rain2avoid {' '.join(args)} imported torch"
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Usage: rain2avoid derain" in r.stdout and "version 0.1.0" in r.stdout


def test_import_rain2avoid_gives_every_public_name_on_first_use():
    code = """if True:
        import sys, rain2avoid
        assert "torch" not in sys.modules
        from rain2avoid import derain
        from rain2avoid.pipeline import derain as defined
        assert derain is defined and set(rain2avoid.__all__) <= set(dir(rain2avoid))
        assert all(getattr(rain2avoid, name) is not None for name in rain2avoid.__all__)
        assert rain2avoid.io.to_uint8  # a submodule, as the README uses it
        try:
            rain2avoid.no_such_name
        except AttributeError as e:
            assert str(e) == "module 'rain2avoid' has no attribute 'no_such_name'", e
        else:
            raise AssertionError("no AttributeError")
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _ci_run() -> Path:
    script = ROOT / ".ci" / "run"
    if not script.is_file() or shutil.which("bash") is None:
        pytest.skip("no .ci/run here (an sdist) or no bash")
    return script


def test_ci_run_runs_the_readme_quick_start_exactly():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start"):]
    commands = re.search(r"```bash\n(.*?)```", quick_start, re.S).group(1).strip().splitlines()
    lines = [line.strip() for line in _ci_run().read_text().splitlines()]
    assert len(commands) == 2 and all(any(line.startswith(c) for line in lines) for c in commands)


def test_ci_run_stops_when_the_install_fails(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(_ci_run(), tmp_path / ".ci" / "run")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fakes = {"python3": "echo 'no venv module' >&2; exit 1", "apt-get": "exit 0",
             "python": f"touch {tmp_path / 'tests-ran'}"}
    for name, body in fakes.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(stat.S_IRWXU)
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode != 0 and "first command failed" in r.stderr
    assert not (tmp_path / "tests-ran").exists()


def test_importing_the_server_without_the_web_extra_names_it():
    """``import rain2avoid.serve`` without FastAPI says which extra to install, not a bare missing module."""
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "try:\n    import rain2avoid.serve\nexcept ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith('pip install "rain2avoid[web]"'), done.stdout
