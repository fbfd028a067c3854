"""Bad input to ``image build`` and ``release make`` (issue 18, volunteer items 3, 6, 9).

The wheel build runs for real in the project's own venv (it needs PyPI or a
pip cache for the build requirements, as the real command does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from provisioning.image import build_image
from provisioning.image.wheelhouse import WheelhouseError, build_meshhub_wheel, wheel_version
from provisioning.release import make_release
from provisioning.release.ops import ReleaseError
from tests.provisioning.test_image_support import make_fake_wheel

ROOT = Path(__file__).resolve().parents[2]


def test_meshhub_wheel_builds_in_the_projects_own_venv(tmp_path: Path) -> None:
    """The venv may lack ``wheel`` and have an old setuptools: pyproject's build needs rule."""
    wheel = build_meshhub_wheel(ROOT, tmp_path / "wheels")
    assert wheel_version(wheel) is not None
    assert wheel.stat().st_size > 100_000


def test_a_failing_wheel_build_shows_its_real_cause(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "meshhub"\nversion = "0.0.1"\n')
    (project / "backend.py").write_text(
        "import sys\n"
        "def _fail(*args, **kwargs):\n"
        "    print(\"error: invalid command 'bdist_wheel'\", file=sys.stderr)\n"
        "    raise SystemExit(1)\n"
        "build_wheel = prepare_metadata_for_build_wheel = _fail\n")
    with pytest.raises(WheelhouseError) as caught:
        build_meshhub_wheel(project, tmp_path / "wheels")
    message = str(caught.value)
    assert "building meshhub's wheel failed" in message
    assert "invalid command 'bdist_wheel'" in message, message
    assert "See above" not in message


def test_release_with_another_version_stops_before_building(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text('[project]\nname = "meshhub"\nversion = "0.1.0"\n')
    out = tmp_path / "release-1.2.0"
    with pytest.raises(ReleaseError, match=r"--version 1.2.0 but this checkout's pyproject.toml "
                                           r'says 0.1.0; set version = "1.2.0"'):
        make_release(out, version="1.2.0", project=checkout)
    assert os.listdir(tmp_path) == ["checkout"]


def test_failed_release_leaves_no_half_filled_folder(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    (wheels).mkdir()
    for number in range(40):  # dependencies, but no meshhub wheel
        (wheels / f"dep{number}-1.0-py3-none-any.whl").write_bytes(b"x" * 1000)
    out = tmp_path / "release-1.2.0"
    with pytest.raises(Exception, match="exactly one meshhub wheel"):
        make_release(out, wheelhouse=wheels)
    assert sorted(os.listdir(tmp_path)) == ["wheels"]  # no release-1.2.0, no hidden partial
    make_fake_wheel(wheels, "1.2.0")
    manifest = make_release(out, version="1.2.0", wheelhouse=wheels)  # a second try works
    assert str(manifest.version) == "1.2.0" and len(manifest.files) == 41
    assert sorted(os.listdir(tmp_path)) == ["release-1.2.0", "wheels"]


def test_image_build_on_a_non_image_names_the_base(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    base = bad / "notes.img"
    base.write_bytes(b"this is not a disk image\n" * 100)
    out = bad / "o8.img"
    with pytest.raises(Exception) as caught:  # no --wheelhouse: fails before building one
        build_image(base, out)
    message = str(caught.value)
    assert message.startswith(f"{base}:") and "partial" not in message, message
    assert os.listdir(bad) == ["notes.img"]


def test_image_build_command_names_the_base(tmp_path: Path) -> None:
    import subprocess

    base = tmp_path / "random.img"
    base.write_bytes(os.urandom(4096))
    result = subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                             "image", "build",
                             "--base", str(base), "--out", str(tmp_path / "o.img")],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 1
    assert f"error: {base}:" in result.stderr and "Traceback" not in result.stderr
